"""The web app at the HTTP level: every route, conditional GET, CSRF, auth, rate limits."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re

import pytest
import sqlalchemy
from starlette.testclient import TestClient

from aggregator.loopback import MailSink
from aggregator.web import create_app

from .conftest import free_port, item, rss, serve_feed, worker_config

TAG = ("Co-production Week",)


@pytest.fixture
def mail():
    with MailSink() as sink:
        yield sink


@pytest.fixture
def agg(make_agg, mail):
    return make_agg(
        digest={
            "smtp_host": "127.0.0.1",
            "smtp_port": mail.port,
            "sender": "Co-production Week <digest@example.org>",
        }
    )


@pytest.fixture
def web(agg):
    with TestClient(create_app(agg), base_url="https://example.org") as client:
        yield client


def csrf(client, path="/") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def with_posts(agg, site, count=3):
    items = [
        item(
            f"Post {n}",
            guid=f"p{n}",
            link=f"https://blog.example/{n}",
            categories=TAG,
            date=f"Wed, 05 Jul 2017 0{n}:00:00 +0000",
        )
        for n in range(count)
    ]
    url = serve_feed(site, "/blog", rss(*items))
    agg.add_contributor("Ann", url, feed=url)
    agg.update_feeds()
    agg.publish()


def test_home_lists_posts_newest_first_with_pages(agg, web, site, monkeypatch):
    import aggregator.web.public as web_module

    monkeypatch.setattr(web_module, "PAGE_SIZE", 2)
    with_posts(agg, site, 3)
    with TestClient(create_app(agg)) as client:
        first = client.get("/").text
        assert first.index("Post 2") < first.index("Post 1") and "Post 0" not in first
        assert 'href="/?page=2"' in first and 'action="/subscribe"' in first
        assert "Post 0" in client.get("/?page=2").text


def test_outputs_are_served_with_validators_and_304(agg, web, site):
    with_posts(agg, site, 1)
    response = web.get("/feed.atom")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    assert "max-age" in response.headers["cache-control"]
    etag, modified = response.headers["etag"], response.headers["last-modified"]
    assert web.get("/feed.atom", headers={"If-None-Match": etag}).status_code == 304
    assert web.get("/feed.atom", headers={"If-Modified-Since": modified}).status_code == 304
    for name, media in (("rss.xml", "application/rss+xml"), ("feed.json", "application/feed+json")):
        other = web.get(f"/{name}")
        assert other.status_code == 200 and other.headers["content-type"].startswith(media)
        again = web.get(f"/{name}", headers={"If-None-Match": other.headers["etag"]})
        assert again.status_code == 304
    assert web.get("/contributors.opml").status_code == 200
    assert web.get("/aggregator.db").status_code == 404
    assert web.get("/digests/../../etc/passwd").status_code == 404


def test_subscribe_double_opt_in(agg, web, mail):
    token = csrf(web)
    assert web.post("/subscribe", data={"email": "ann@example.org"}).status_code == 403
    answer = web.post("/subscribe", data={"email": "Ann@Example.org", "csrf": token})
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert agg.storage.subscribers.active() == []  # not before confirming
    ((rcpt, raw),) = mail.messages
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert rcpt == ["Ann@example.org"]
    link = re.search(r"https://example.org/coproweek/confirm/\S+", msg.get_content()).group(0)
    path = link.replace("https://example.org/coproweek", "")
    # opening the link (or a mail scanner's HEAD) only asks; the button subscribes
    assert web.head(path).status_code == 200
    page = web.get(path)
    assert "Ann@example.org" in page.text and "<button" in page.text
    assert agg.storage.subscribers.active() == []
    confirmed = web.post(path)
    assert "Subscribed" in confirmed.text
    assert [s.email for s in agg.storage.subscribers.active()] == ["Ann@example.org"]
    # subscribing again reveals nothing and sends nothing
    again = web.post("/subscribe", data={"email": "Ann@example.org", "csrf": token})
    assert again.text == answer.text
    assert len(mail.messages) == 1
    assert web.get("/confirm/not-a-token").status_code == 404


def test_subscribe_is_rate_limited(agg, web, mail):
    token = csrf(web)
    codes = [
        web.post("/subscribe", data={"email": f"x{n}@example.org", "csrf": token}).status_code
        for n in range(7)
    ]
    assert codes == [200] * 5 + [429] * 2
    web2 = TestClient(create_app(agg), base_url="https://example.org")
    token2 = csrf(web2)
    by_address = [
        web2.post("/subscribe", data={"email": "same@example.org", "csrf": token2}).status_code
        for _ in range(4)
    ]
    assert by_address[-1] == 429


def test_behind_a_local_proxy_each_visitor_has_a_limit_of_their_own(agg, mail):
    """The proxy on this machine says who asked (X-Forwarded-For); anyone else saying so
    is not believed, so the header cannot dodge a limit."""

    def subscribes(client: TestClient, forwarded_for: str) -> list[int]:
        token, codes = csrf(client), []
        for n in range(6):
            answer = client.post(
                "/subscribe",
                data={"email": f"{forwarded_for}{n}@example.org", "csrf": token},
                headers={"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"},
            )
            codes.append(answer.status_code)
        return codes

    app = create_app(agg)
    proxy = ("127.0.0.1", 40000)
    with TestClient(app, base_url="https://example.org", client=proxy) as via_proxy:
        assert subscribes(via_proxy, "a") == [200] * 5 + [429]
        assert subscribes(via_proxy, "b") == [200] * 5 + [429]  # someone else: a fresh limit
    with TestClient(app, base_url="https://example.org", client=("203.0.113.9", 1)) as outsider:
        assert subscribes(outsider, "c") == [200] * 5 + [429]
        assert subscribes(outsider, "d") == [429] * 6  # its own address, whatever it says


def test_unsubscribe_page_and_one_click(agg, web):
    agg.add_subscriber("ann@example.org")
    agg.add_subscriber("bob@example.org")
    ann, bob = sorted(agg.storage.subscribers.active(), key=lambda s: s.email)
    page = web.get(f"/unsubscribe/{ann.token}")
    assert "ann@example.org" in page.text and "<button" in page.text
    assert web.post(f"/unsubscribe/{ann.token}").status_code == 200
    # RFC 8058: the mail client POSTs List-Unsubscribe=One-Click, no cookies, no CSRF token
    one_click = TestClient(create_app(agg)).post(
        f"/unsubscribe/{bob.token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200
    assert agg.storage.subscribers.active() == []
    assert web.get("/unsubscribe/nope").status_code == 404
    assert web.post("/unsubscribe/nope").status_code == 404


def test_head_and_get_never_change_a_subscription(agg, web):
    agg.add_subscriber("ann@example.org")
    (ann,) = agg.storage.subscribers.active()
    for method in (web.head, web.get):
        assert method(f"/unsubscribe/{ann.token}").status_code == 200
        assert method(f"/confirm/{ann.token}").status_code == 200
    assert [s.email for s in agg.storage.subscribers.active()] == ["ann@example.org"]


def test_an_old_confirmation_link_does_not_resubscribe(agg, web):
    agg.add_subscriber("ann@example.org")
    (ann,) = agg.storage.subscribers.active()
    web.post(f"/unsubscribe/{ann.token}")
    assert web.get(f"/confirm/{ann.token}").status_code == 404
    again = web.post(f"/confirm/{ann.token}")
    assert again.status_code == 404 and "subscribe again" in again.text
    assert agg.storage.subscribers.active() == []


def test_register_a_blog_shows_what_was_found_and_waits(agg, web, site):
    url = serve_feed(
        site,
        "/blog/feed",
        rss(
            item(
                "Hello <script>",
                guid="1",
                link="https://b.example/1",
                content="<p>Text<script>alert(1)</script></p>",
            ),
            title="Bea's blog",
        ),
    )
    site.routes["/blog/"] = type(site.routes["/blog/feed"])(
        f'<html><head><link rel="alternate" type="application/rss+xml" href="{url}">'
        "</head></html>".encode(),
        content_type="text/html",
    )
    token = csrf(web, "/register")
    page = web.post(
        "/register",
        data={"name": "Bea", "url": site.url("/blog/"), "email": "bea@example.org", "csrf": token},
    )
    assert page.status_code == 200
    assert "Bea&#39;s blog" in page.text and '<a href="https://b.example/1">Hello</a>' in page.text
    assert "<script>" not in page.text and "alert(1)" not in page.text
    assert [r.feed_url for r in agg.registrations()] == [url]
    assert agg.contributors() == []  # waits for an organiser
    bad = web.post(
        "/register",
        data={"name": "X", "url": site.url("/nothing"), "email": "x@example.org", "csrf": token},
    )
    assert bad.status_code == 400 and "cannot read" in bad.text


def login(client, agg, password="correct horse battery"):
    agg.add_organiser("org@example.org", password)
    token = csrf(client, "/admin/login")
    return client.post(
        "/admin/login",
        data={"email": "org@example.org", "password": password, "csrf": token},
        follow_redirects=False,
    )


def test_admin_needs_login_and_refuses_bad_passwords(agg, web):
    assert web.get("/admin", follow_redirects=False).headers["location"] == "/admin/login"
    assert web.post("/admin/poll", data={}).status_code == 403
    agg.add_organiser("org@example.org", "right password!")
    token = csrf(web, "/admin/login")
    wrong = web.post(
        "/admin/login", data={"email": "org@example.org", "password": "wrong", "csrf": token}
    )
    assert wrong.status_code == 401
    codes = [
        web.post(
            "/admin/login", data={"email": "org@example.org", "password": "wrong", "csrf": token}
        ).status_code
        for _ in range(10)
    ]
    assert codes[-1] == 429


def test_session_cookie_flags(agg, web):
    response = login(web, agg)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie


def test_organiser_approves_polls_hides_and_manages(agg, web, site, mail, clock):
    url = serve_feed(
        site,
        "/blog/feed",
        rss(item("Event post", guid="1", link="https://b.example/1", categories=TAG)),
    )
    agg.storage.registrations.add("Bea", url, url, "Bea's blog", "bea@example.org", agg.now())
    login(web, agg)
    dashboard = web.get("/admin").text
    assert "Bea" in dashboard and "Approve" in dashboard
    token = csrf(web, "/admin")
    reg_id = agg.registrations()[0].id
    assert web.post("/admin/approve", data={"id": reg_id}).status_code == 403  # no CSRF token
    web.post("/admin/approve", data={"id": reg_id, "csrf": token})
    assert [c.name for c in agg.contributors()] == ["Bea"]
    polled = web.post("/admin/poll", data={"csrf": token})
    assert "1 new" in polled.text
    assert "Event post" in web.get("/").text
    web.post("/admin/hide", data={"url": "https://b.example/1", "csrf": token})
    assert "Event post" not in web.get("/").text
    assert "hidden" in web.get("/admin").text
    web.post("/admin/show", data={"url": "https://b.example/1", "csrf": token})
    assert "Event post" in web.get("/").text
    agg.add_subscriber("sub@example.org")
    clock.advance(minutes=5)
    preview = web.post("/admin/preview", data={"csrf": token})
    assert "Event post" in preview.text and mail.messages == []
    asked = web.post("/admin/send", data={"csrf": token, "back": "today"})
    assert "Send today&#39;s digest now?" in asked.text
    assert "to 1 subscriber, with 1 post" in asked.text
    assert mail.messages == []  # one click only asks
    sent = web.post("/admin/send", data={"csrf": token, "back": "today", "confirmed": "yes"})
    assert "sent to 1 subscriber" in sent.text and len(mail.messages) == 1
    assert str(sent.url).endswith("/admin#result")
    web.post("/admin/pause", data={"url": url, "csrf": token})
    assert agg.status()[0].state == "paused"
    web.post("/admin/unsubscribe", data={"email": "sub@example.org", "csrf": token})
    assert agg.storage.subscribers.active() == []
    web.post("/admin/logout", data={"csrf": token})
    assert web.get("/admin", follow_redirects=False).status_code == 303


def test_digest_archive_page(agg, web, site, mail, clock):
    with_posts(agg, site, 1)
    agg.add_subscriber("a@example.org")
    clock.advance(minutes=1)
    agg.send_digest(dt.date(2017, 7, 5))
    archive = web.get("/digests/")
    assert 'href="/digests/2017-07-05.html"' in archive.text
    assert "Post 0" in web.get("/digests/2017-07-05.html").text


def test_organisers_are_alerted_once_a_day_about_failing_and_silent_feeds(agg, site, mail, clock):
    from aggregator.loopback import Response

    agg.add_organiser("org@example.org", "x" * 12)
    broken = serve_feed(site, "/broken", rss(item("x", guid="x", categories=TAG)))
    silent = serve_feed(site, "/silent", rss(item("Not for the event", guid="s")))
    agg.add_contributor("Broken blog", broken, feed=broken)
    agg.add_contributor("Quiet blog", silent, feed=silent)
    agg.update_feeds()  # Broken blog's post is stored before it breaks
    site.routes["/broken"] = Response(b"down", status=500, content_type="text/plain")
    clock.advance(hours=2)
    agg.update_feeds(include_not_due=True)
    assert agg.send_health_alert() == "organiser alert: nothing to report"  # not a day yet
    clock.advance(days=1)
    agg.update_feeds(include_not_due=True)
    alert = agg.send_health_alert()
    assert alert.startswith("organiser alert: 2 problem(s) for 1 organiser(s)")
    assert "outbox: 1 sent, 0 waiting" in alert
    ((rcpt, raw),) = mail.messages
    text = email.message_from_bytes(raw, policy=email.policy.default).get_content()
    assert rcpt == ["org@example.org"]
    assert f"Broken blog: {broken} has failed since" in text and "server error (500)" in text
    assert "Quiet blog has published nothing labelled for Co-production Week 2017" in text
    assert agg.send_health_alert() == "organiser alert: already sent today"
    assert len(mail.messages) == 1


def test_serve_with_worker_polls_and_serves_then_stops_on_sigterm(tmp_path, site):
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    url = serve_feed(site, "/blog", rss(item("Served by the worker", guid="w", categories=TAG)))
    port = free_port()
    config = worker_config(tmp_path, url)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aggregator",
            "--config",
            str(config),
            "serve",
            "--port",
            str(port),
            "--with-worker",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    page = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
            if "Served by the worker" in page:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    assert "Served by the worker" in page, output
    assert proc.returncode == 0, output
    assert "Traceback" not in output


def test_an_approval_that_cannot_add_the_blog_leaves_it_waiting(agg, web, site):
    # the feed stopped answering between registration and approval
    url = site.url("/gone/feed")
    agg.storage.registrations.add("Cy", url, url, "Cy's blog", "cy@example.org", agg.now())
    login(web, agg)
    token = csrf(web, "/admin")
    answer = web.post("/admin/approve", data={"id": agg.registrations()[0].id, "csrf": token})
    assert answer.status_code == 200 and "Could not do that" in answer.text
    assert [r.name for r in agg.registrations()] == ["Cy"]  # still waiting, not lost
    assert agg.contributors() == []


def test_dashboard_actions_with_a_missing_field_say_so(agg, web):
    login(web, agg)
    token = csrf(web, "/admin")
    for action in ("approve", "pause", "remove", "hide", "unsubscribe", "add"):
        answer = web.post(f"/admin/{action}", data={"csrf": token})
        assert answer.status_code == 200, action
        assert "Could not do that: the form is missing" in answer.text, action
    assert web.post("/admin/approve", data={"id": "x", "csrf": token}).status_code == 200
    assert web.post("/admin/nonsense", data={"csrf": token}).status_code == 404


def test_dashboard_next_try_honours_retry_after_like_status(agg, web, site, clock):
    from aggregator.loopback import Response

    url = serve_feed(site, "/busy/feed", rss(item("Event post", guid="1", categories=TAG)))
    agg.add_contributor("Busy", url, feed=url)
    site.routes["/busy/feed"] = Response(
        b"slow down", status=429, content_type="text/plain", headers={"Retry-After": "86400"}
    )
    agg.update_feeds()
    wait_until = clock.now + dt.timedelta(days=1)
    login(web, agg)
    # in the event's time zone, and as a distance from now
    local = wait_until.astimezone(agg.settings.event.tz)
    shown = f'<time datetime="{local.isoformat()}">in 24 hours</time>'
    assert shown in web.get("/admin").text
    assert agg.status()[0].next_try == wait_until


def test_the_dashboard_shows_the_workers_alive(agg, web):
    login(web, agg)
    page = " ".join(re.sub(r"<[^>]+>", " ", web.get("/admin").text).split())
    assert "Workers (0)" in page and "No worker is running" in page
    with agg.working("run") as worker:
        page = " ".join(re.sub(r"<[^>]+>", " ", web.get("/admin").text).split())
    assert "Workers (1)" in page
    assert f"{worker.id} (aggregator run): last report 0 s ago" in page


def test_the_collection_dates_read_as_a_sentence(make_agg):
    # trimmed template whitespace once printed "1 May 2017until 31 July 2017"
    agg = make_agg(event={"collect_from": "2017-05-01", "collect_until": "2017-07-31"})
    agg.publish()
    page = (agg.settings.output_dir / "index.html").read_text()
    with TestClient(create_app(agg)) as client:
        home = client.get("/").text
    for html in (page, home):
        text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
        assert "Posts written from 1 May 2017 until 31 July 2017" in text


def test_every_answer_carries_security_headers_and_the_dashboard_is_not_cached(agg, web):
    login(web, agg)
    for path in ("/", "/register", "/admin", "/admin/login", "/no-such-page"):
        headers = web.get(path).headers
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, path
        assert "script-src" not in policy  # no script of any kind may run
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "same-origin", path
    assert web.get("/admin").headers["cache-control"] == "no-store"
    assert "no-store" not in web.get("/").headers.get("cache-control", "")


def test_logout_password_change_and_removal_end_every_session(agg, web):
    def dashboard_opens(cookies) -> bool:
        other = TestClient(create_app(agg), base_url="https://example.org", cookies=cookies)
        return other.get("/admin", follow_redirects=False).status_code == 200

    # logout ends the session in every browser, including a copy of the cookie
    assert login(web, agg).status_code == 303
    stolen = dict(web.cookies)
    assert dashboard_opens(stolen)
    web.post("/admin/logout", data={"csrf": csrf(web, "/admin")})
    assert not dashboard_opens(stolen)

    # so does a new password
    login(web, agg)
    stolen = dict(web.cookies)
    agg.add_organiser("org@example.org", "a brand new password")
    assert not dashboard_opens(stolen)
    assert web.get("/admin", follow_redirects=False).status_code == 303

    # and removing the account
    login(web, agg, password="a brand new password")
    stolen = dict(web.cookies)
    assert dashboard_opens(stolen)
    agg.remove_organiser("org@example.org")
    assert not dashboard_opens(stolen)


def test_login_starts_a_new_session(agg, web):
    web.get("/admin/login")
    before = web.cookies.get("session")
    login(web, agg)
    assert web.cookies.get("session") != before


def test_a_database_of_the_first_schema_is_migrated(make_agg, database_url):
    """Version 1 had no session numbers; opening it adds the column and keeps accounts."""
    import sqlalchemy

    agg = make_agg()
    agg.add_organiser("org@example.org", "a long enough password")
    with agg.storage.engine.begin() as conn:
        conn.execute(sqlalchemy.text("ALTER TABLE organiser DROP COLUMN session_version"))
        conn.execute(sqlalchemy.text("UPDATE meta SET value = '1' WHERE key = 'schema_version'"))
    agg.close()
    again = make_agg()
    assert again.check_login("org@example.org", "a long enough password") == (
        "org@example.org",
        0,
    )


def test_look_alike_spellings_of_an_address_share_one_limit(agg, web, mail):
    token = csrf(web)
    spellings = ["same@example.org", "SAME@example.org", "Same@Example.ORG", "ｓａｍｅ@example.org"]
    codes = [
        web.post("/subscribe", data={"email": s, "csrf": token}).status_code for s in spellings
    ]
    assert codes == [200, 200, 200, 429]


def test_junk_addresses_are_refused_without_being_remembered(agg):
    app = create_app(agg)
    with TestClient(app, base_url="https://example.org") as client:
        token = csrf(client)
        for n in range(30):
            junk = f"{n}" + "x" * 60_000
            answer = client.post("/subscribe", data={"email": junk, "csrf": token})
            assert answer.status_code in (400, 429)
    # only the per-client limit counted them: no row per junk address
    assert agg.storage.rates.count() == 1


def test_rate_limits_are_kept_hashed_and_old_windows_forgotten(agg, clock):
    for n in range(300):
        assert agg.allow("test", f"client-{n}@example.org", 3, 3600)
    assert agg.allow("test", "client-1@example.org", 3, 3600)
    assert agg.allow("test", "client-1@example.org", 3, 3600)
    assert not agg.allow("test", "client-1@example.org", 3, 3600)
    with agg.storage.engine.connect() as conn:
        keys = [k for (k,) in conn.execute(sqlalchemy.text("SELECT key FROM ratehit"))]
    assert len(keys) == 300 and not any("example.org" in k for k in keys)
    clock.advance(hours=1)
    assert agg.allow("test", "client-1@example.org", 3, 3600)  # a new window
    clock.advance(days=2)
    agg.storage.rates.purge(clock.now)
    assert agg.storage.rates.count() == 0


def test_a_large_request_body_is_refused_early(agg, web):
    token = csrf(web)
    big = web.post("/subscribe", data={"email": "a@example.org", "csrf": token, "x": "y" * 200_000})
    assert big.status_code == 413
    upload = web.post(
        "/register", files={"file": ("big.bin", b"0" * 1_000_000)}, data={"csrf": token}
    )
    assert upload.status_code == 413


def test_a_subscription_made_while_the_mail_server_is_down_is_confirmed_once_it_is_back(
    make_agg, clock
):
    port = free_port()  # nothing listens here yet: the mail server is down
    agg = make_agg(digest={"smtp_host": "127.0.0.1", "smtp_port": port})
    with TestClient(create_app(agg), base_url="https://example.org") as web:
        token = csrf(web)
        down = web.post("/subscribe", data={"email": "ann@example.org", "csrf": token})
        known = web.post("/subscribe", data={"email": "ann@example.org", "csrf": token})
    # the visitor is told at once, the same for a new and a known address
    assert down.status_code == 200 and "Check your inbox" in down.text
    assert known.status_code == 200
    assert agg.send_outbox().waiting == 1  # one confirmation kept, none lost
    with MailSink(port=port) as mail:
        assert agg.send_outbox().sent == 0  # not due yet: it backs off after a failure
        clock.advance(minutes=5)
        report = agg.send_outbox()
        assert (report.sent, report.waiting) == (1, 0)
        clock.advance(hours=2)
        agg.send_outbox()
        ((rcpt, raw),) = mail.messages  # exactly once
    assert rcpt == ["ann@example.org"]
    link = re.search(rb"/confirm/(\S+)", raw).group(1).decode()
    assert agg.confirm_subscription(link) == "ann@example.org"


def test_a_letter_taken_by_a_sender_that_died_goes_out_once_its_lease_ends(agg, mail, clock):
    site = agg.settings.event.site_url
    agg.request_subscription("ann@example.org", lambda t: f"{site}confirm/{t}")
    (row,) = agg.storage.outbox.due(clock.now)
    # another sender took it and died before sending
    assert agg.storage.outbox.claim(row, clock.now, dt.timedelta(minutes=10))
    assert not agg.storage.outbox.claim(row, clock.now, dt.timedelta(minutes=10))
    assert agg.send_outbox().sent == 0 and mail.messages == []
    clock.advance(minutes=11)
    assert agg.send_outbox().sent == 1
    assert agg.send_outbox().sent == 0
    assert len(mail.messages) == 1


def test_a_permanently_refused_address_is_given_up_at_once(agg, mail):
    mail.refuse.add("gone@example.org")
    site = agg.settings.event.site_url
    agg.request_subscription("gone@example.org", lambda t: f"{site}confirm/{t}")
    report = agg.send_outbox()
    assert report.sent == 0 and report.waiting == 0 and "550" in report.failed[0]


def test_a_letter_whose_content_is_refused_does_not_hold_up_the_others(agg, mail, clock):
    """A 554 or 452 after a letter's content is sent is that letter's answer alone. Before,
    the outbox took it for a server not taking mail, and the letters after it waited for
    the next run."""
    mail.reject_content["ann@example.org"] = "554 5.7.1 message rejected as spam"
    mail.reject_content["cy@example.org"] = "452 4.3.1 insufficient storage, try later"
    site = agg.settings.event.site_url
    for reader in ("ann@example.org", "bob@example.org", "cy@example.org", "dee@example.org"):
        agg.request_subscription(reader, lambda t: f"{site}confirm/{t}")
    report = agg.send_outbox()
    assert sorted(r[0] for r, _m in mail.messages) == ["bob@example.org", "dee@example.org"]
    assert (report.sent, report.waiting) == (2, 2)
    assert "ann@example.org: the mail server: 554 5.7.1 message rejected as spam" in report.failed
    mail.reject_content.clear()
    clock.advance(minutes=5)
    assert agg.send_outbox().sent == 2  # Ann's and Cy's, once each
    clock.advance(hours=2)
    assert agg.send_outbox().sent == 0
    assert sorted(r[0] for r, _m in mail.messages) == [
        "ann@example.org",
        "bob@example.org",
        "cy@example.org",
        "dee@example.org",
    ]


def test_a_refused_sender_stops_the_run_and_every_letter_goes_once_it_is_fixed(agg, mail, clock):
    """A relay that does not take our sender address refuses every letter alike: the run
    stops at the first (the others wait, untried, none given up), and once the organiser
    has it fixed each letter goes out once."""
    mail.refuse_sender = "553 5.7.1 sender address not allowed"
    site = agg.settings.event.site_url
    readers = ["ann@example.org", "bob@example.org", "cy@example.org"]
    for reader in readers:
        agg.request_subscription(reader, lambda t: f"{site}confirm/{t}")
    report = agg.send_outbox()
    assert (report.sent, report.waiting, len(report.failed)) == (0, 3, 1)
    assert "553 5.7.1 sender address not allowed" in report.failed[0]
    assert [row.attempts for row in agg.storage.outbox.due(clock.now)] == [0, 0]
    mail.refuse_sender = None
    clock.advance(minutes=5)
    assert agg.send_outbox().sent == 3
    assert sorted(r[0] for r, _m in mail.messages) == readers


def test_a_re_created_account_does_not_revive_old_sessions(agg, web):
    login(web, agg)
    stolen = dict(web.cookies)
    agg.remove_organiser("org@example.org")
    agg.add_organiser("org@example.org", "correct horse battery")
    other = TestClient(create_app(agg), base_url="https://example.org", cookies=stolen)
    assert other.get("/admin", follow_redirects=False).status_code == 303


def test_head_of_the_forms_shows_them(web):
    assert web.head("/admin/login").status_code == 200
    assert web.head("/register").status_code == 200
