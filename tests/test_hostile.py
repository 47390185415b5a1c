"""The hostile web (issue 4): every bad feed gets a clear reason in `status`, and nothing
else is harmed. Each case is served over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import gzip
import socket
import sqlite3
import threading
import time

import pytest

from aggregator.errors import DiscoveryError, FeedError
from aggregator.loopback import Response
from aggregator.pipeline import fetch as fetch_module
from aggregator.pipeline.fetch import FetchLimits, make_client
from aggregator.pipeline.fetch import fetch as fetch_url

from .conftest import atom, atom_entry, item, published, rss, serve_feed, titles

TAG = ("Co-production Week",)
GOOD = rss(item("Good post", guid="good", link="https://good.example/1", categories=TAG))


def register(agg, site, path, body=GOOD, **response):
    url = serve_feed(site, path, body, **response)
    agg.add_contributor(path.strip("/"), url, feed=url)
    return url


def row(agg, path_or_name):
    return next(
        r
        for r in agg.storage.feeds.feed_rows()
        if r.url.endswith(path_or_name) or r.contributor == path_or_name
    )


def test_html_instead_of_a_feed(make_agg, site):
    agg = make_agg()
    register(agg, site, "/blog")
    site.routes["/blog"] = Response(
        b"<!DOCTYPE html><html><body>Moved!</body></html>", content_type="text/html"
    )
    agg.update_feeds()
    assert row(agg, "/blog").last_error == "not a feed (got an HTML page)"


def test_bozo_feed_keeps_its_entries_and_notes_the_problem(make_agg, site):
    agg = make_agg()
    broken = GOOD.replace(
        b"<description>d</description>", b"<description>AT&T &uuml;</description>"
    )
    register(agg, site, "/bozo", broken)
    agg.update_feeds()
    assert titles(agg) == ["Good post"]
    assert "not well-formed XML" in row(agg, "/bozo").problem


RSS_1252 = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    "<item><title>Café “quotes” – naïve</title><guid>1</guid>"
    "<category>Co-production Week</category></item></channel></rss>"
)


@pytest.mark.parametrize(
    "body, content_type",
    [
        # windows-1252 bytes, no declaration, no charset
        (RSS_1252.encode("cp1252"), "application/xml"),
        # UTF-8 with a BOM and a declaration
        (
            b"\xef\xbb\xbf"
            + RSS_1252.replace('version="1.0"?>', 'version="1.0" encoding="utf-8"?>').encode(),
            "application/rss+xml; charset=utf-8",
        ),
        # declared windows-1252 in the XML, no charset in the header
        (
            RSS_1252.replace('version="1.0"?>', 'version="1.0" encoding="windows-1252"?>').encode(
                "cp1252"
            ),
            "application/rss+xml",
        ),
    ],
)
def test_encodings_come_out_right(make_agg, site, body, content_type):
    agg = make_agg()
    register(agg, site, "/enc", body, content_type=content_type)
    agg.update_feeds()
    assert titles(agg) == ["Café “quotes” – naïve"]


def test_entity_bomb_and_external_entities_are_neutralised(make_agg, site):
    agg = make_agg()
    lol = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol0 "lol">{lol}]>'
        '<rss version="2.0"><channel><title>&lol9;</title>'
        "<item><title>Bomb &lol9;</title><guid>b</guid>"
        "<category>Co-production Week</category></item></channel></rss>"
    ).encode()
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<rss version="2.0"><channel><title>t</title><item><title>Secret &xxe;</title>'
        b"<guid>x</guid><category>Co-production Week</category></item></channel></rss>"
    )
    register(agg, site, "/bomb", bomb)
    register(agg, site, "/xxe", xxe)
    started = time.monotonic()
    agg.update_feeds()
    assert time.monotonic() - started < 10
    entries = published(agg)
    text = " ".join(e.title + e.get("summary", "") for e in entries)
    assert "root:" not in text and "lollollol" not in text
    assert "XML entities" in row(agg, "/bomb").problem


def endless(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/rss+xml")
    handler.end_headers()
    handler.wfile.write(b'<?xml version="1.0"?><rss version="2.0"><channel><title>')
    try:
        for _ in range(100_000):
            handler.wfile.write(b"A" * 65536)
    except OSError:
        pass


def trickle(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/rss+xml")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    try:
        for _ in range(100):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass


def test_too_large_and_endless_bodies_stop_at_the_limit(make_agg, site):
    agg = make_agg(polling={"max_feed_bytes": 200_000})
    register(agg, site, "/good")
    register(agg, site, "/endless")
    register(agg, site, "/big")
    site.routes["/endless"] = endless
    site.routes["/big"] = Response(b"<rss>" + b" " * 300_000)
    agg.update_feeds()
    assert row(agg, "/endless").last_error.startswith("feed too large: more than 200,000 bytes")
    assert row(agg, "/big").last_error.startswith("feed too large")
    assert titles(agg) == ["Good post"]


def test_a_trickling_server_is_cut_off_at_the_total_timeout(make_agg, site):
    agg = make_agg(polling={"timeout_seconds": 1})
    register(agg, site, "/slow")
    site.routes["/slow"] = trickle
    started = time.monotonic()
    agg.update_feeds()
    assert time.monotonic() - started < 4
    assert row(agg, "/slow").last_error.startswith("timed out")


def test_redirect_loops_and_too_many_redirects(make_agg, site):
    agg = make_agg()
    register(agg, site, "/loop")
    register(agg, site, "/far")
    site.routes["/loop"] = Response(status=302, headers={"Location": "/loop2"})
    site.routes["/loop2"] = Response(status=302, headers={"Location": "/loop"})
    site.routes["/far"] = Response(status=302, headers={"Location": "/r1"})
    for n in range(1, 10):
        site.routes[f"/r{n}"] = Response(status=307, headers={"Location": f"/r{n + 1}"})
    agg.update_feeds()
    assert row(agg, "/loop").last_error.startswith("redirect loop")
    assert row(agg, "/far").last_error == "too many redirects (more than 5)"


def test_private_addresses_are_refused_unless_allowed(make_agg, site):
    agg = make_agg(polling={"allow_private_addresses": False})
    with pytest.raises(DiscoveryError, match="points inside the network"):
        agg.add_contributor("Local", site.url("/"))
    with pytest.raises(DiscoveryError, match="only http and https"):
        agg.add_contributor("File", "file:///etc/passwd")
    assert site.requests == []  # refused before any connection


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://0.0.0.0/",
        "http://localhost/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
def test_address_guard(url):
    with pytest.raises(FeedError, match="points inside the network"):
        guarded_fetch(url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "ftp://x/"])
def test_other_schemes_are_refused_even_when_private_is_allowed(url):
    with pytest.raises(FeedError, match="only http and https"):
        guarded_fetch(url, allow_private=True)


def guarded_fetch(url, allow_private=False):
    async def go():
        limits = FetchLimits(allow_private_addresses=allow_private, timeout_seconds=5)
        async with make_client(2, limits) as client:
            return await fetch_url(client, url, limits)

    return asyncio.run(go())


def test_the_address_checked_is_the_address_connected_to(site, monkeypatch):
    # DNS rebinding: a name answers a harmless address when checked and a private one
    # when connected. There is no DNS server here: getaddrinfo is replaced for one made-up
    # name, answering 127.0.0.1 (counted as public for this test) the first time and
    # 127.0.0.2 (private, and nothing listens there) every time after.
    real_lookup, real_public = socket.getaddrinfo, fetch_module._is_public
    answers = iter(["127.0.0.1"] + ["127.0.0.2"] * 10)

    def lookup(host, port, family=0, type=0, proto=0, flags=0):
        if host != "rebind.test":
            return real_lookup(host, port, family, type, proto, flags)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(fetch_module, "_is_public", lambda a: a == "127.0.0.1" or real_public(a))
    url = serve_feed(site, "/feed", GOOD).replace("127.0.0.1", "rebind.test")
    result = guarded_fetch(url)  # one lookup, checked and used
    assert b"Good post" in result.content
    assert next(answers) == "127.0.0.2"  # the second answer was never asked for


@pytest.mark.parametrize(
    "body, error",
    [
        (gzip.compress(b" " * 20_000_000), "feed too large: more than 200,000 bytes"),
        # a gzip header, then a deflate block of the reserved type
        (gzip.compress(GOOD)[:10] + b"\xff" * 40, "the server sent a corrupt compressed body"),
    ],
    ids=["gzip bomb", "corrupt gzip"],
)
def test_compressed_bodies_are_bounded_and_checked(make_agg, site, body, error):
    agg = make_agg(polling={"max_feed_bytes": 200_000})
    register(agg, site, "/feed")
    register(agg, site, "/good")
    site.routes["/feed"] = Response(body, headers={"Content-Encoding": "gzip"})
    agg.update_feeds()
    assert row(agg, "/feed").last_error.startswith(error)
    assert row(agg, "/good").last_result == "ok"


def test_redirect_to_a_private_address_is_refused(site, monkeypatch):
    # There is no public internet here: pretend 127.0.0.1 is a public address so the
    # first hop passes the guard, then redirect to 127.0.0.2 (still private).
    real = fetch_module._is_public
    monkeypatch.setattr(fetch_module, "_is_public", lambda a: a == "127.0.0.1" or real(a))
    site.routes["/feed"] = Response(status=302, headers={"Location": "http://127.0.0.2:9/x"})

    async def go():
        limits = FetchLimits(allow_private_addresses=False, timeout_seconds=5)
        async with make_client(2, limits) as client:
            return await fetch_url(client, site.url("/feed"), limits)

    with pytest.raises(FeedError, match=r"127\.0\.0\.2 points inside the network"):
        asyncio.run(go())


def test_status_codes(make_agg, site, clock):
    agg = make_agg()
    for path, status in [("/gone", 410), ("/missing", 404), ("/private", 403), ("/auth", 401)]:
        register(agg, site, path)
        site.routes[path] = Response(b"no", status=status, content_type="text/plain")
    agg.update_feeds()
    assert row(agg, "/gone").gone and "gone (410)" in row(agg, "/gone").last_error
    assert row(agg, "/missing").last_error.startswith("not found (404")
    assert row(agg, "/private").last_error.startswith("access denied (403")
    assert row(agg, "/auth").last_error.startswith("access denied (401")
    # a gone feed is not polled again, even with --all, until it is resumed
    site.requests.clear()
    clock.advance(days=1)
    agg.update_feeds(include_not_due=True)
    assert site.hits("/gone") == []
    agg.set_paused(site.url("/gone"), False)
    site.routes["/gone"] = Response(GOOD)
    agg.update_feeds()
    assert not row(agg, "/gone").gone and row(agg, "/gone").last_result == "ok"


@pytest.mark.parametrize("retry_after", ["seconds", "http-date"])
def test_retry_after_is_honoured_even_by_poll_all(make_agg, site, clock, retry_after):
    agg = make_agg()
    register(agg, site, "/busy")
    server_now = time.time()
    value = (
        "7200"
        if retry_after == "seconds"
        else email.utils.formatdate(server_now + 7200, usegmt=True)
    )
    site.routes["/busy"] = Response(
        b"slow down", status=429, content_type="text/plain", headers={"Retry-After": value}
    )
    agg.update_feeds()
    busy = row(agg, "/busy")
    assert busy.last_error.startswith("too many requests (429")
    assert busy.retry_after_until >= clock.now + dt.timedelta(seconds=7100)
    site.requests.clear()
    clock.advance(minutes=90)
    agg.update_feeds(include_not_due=True)
    assert site.hits("/busy") == []
    clock.advance(minutes=31)
    agg.update_feeds(include_not_due=True)
    assert len(site.hits("/busy")) == 1


def test_failures_back_off_exponentially_and_reset_on_success(make_agg, site, clock):
    agg = make_agg(polling={"interval_minutes": 30, "max_backoff_hours": 4})
    register(agg, site, "/flaky")
    site.routes["/flaky"] = Response(b"down", status=503, content_type="text/plain")
    waits = []
    for _ in range(6):
        agg.update_feeds(include_not_due=True)
        r = row(agg, "/flaky")
        waits.append(round((r.next_due_at - clock.now).total_seconds() / 60))
        clock.advance(minutes=1)
    assert waits == [30, 60, 120, 240, 240, 240]
    assert row(agg, "/flaky").error_count == 6
    site.routes["/flaky"] = Response(GOOD)
    agg.update_feeds(include_not_due=True)
    r = row(agg, "/flaky")
    assert (r.error_count, r.last_result) == (0, "ok")
    assert 30 <= (r.next_due_at - clock.now).total_seconds() / 60 <= 33


def test_entries_missing_parts_and_future_dates(make_agg, site, clock):
    agg = make_agg()
    register(
        agg,
        site,
        "/odd",
        rss(
            "<item><category>Co-production Week</category><description>No title, no id, no link, "
            "no date at all.</description></item>",
            item(
                "From the future",
                guid="f",
                link="https://odd.example/f",
                categories=TAG,
                date="Sat, 01 Jan 2050 00:00:00 +0000",
            ),
            item(
                "Yesterday",
                guid="y",
                link="https://odd.example/y",
                categories=TAG,
                date="Tue, 04 Jul 2017 09:00:00 +0000",
            ),
        ),
    )
    agg.update_feeds()
    entries = published(agg)
    # the future post sorts as when it was first seen (now), not in 2050; undated likewise
    assert [e.title for e in entries][-1] == "Yesterday"
    assert {e.title for e in entries} == {
        "No title, no id, no link, no date at all.",
        "From the future",
        "Yesterday",
    }


def test_header_injection_in_titles_is_neutralised_in_atom(make_agg, site):
    agg = make_agg()
    register(
        agg,
        site,
        "/inj",
        rss(item("Line one&#13;&#10;Bcc: x@evil.example", guid="i", categories=TAG)),
    )
    agg.update_feeds()
    assert titles(agg) == ["Line one Bcc: x@evil.example"]


def test_a_feed_of_thousands_of_entries_is_cut(make_agg, site):
    agg = make_agg()
    many = rss(*(item(f"Post {n}", guid=f"m{n}", categories=TAG) for n in range(3000)))
    register(agg, site, "/many", many)
    summary = agg.update_feeds()
    assert summary.new == 1000
    assert "3,000 entries; only the newest 1,000" in row(agg, "/many").problem


def test_an_oldest_first_feed_keeps_its_newest_posts_past_the_cap(make_agg, site):
    # static-site generators often list every post oldest first: the event's posts,
    # the newest, come last, and a cut by position would drop them all
    agg = make_agg()
    start = dt.datetime(2010, 1, 1, tzinfo=dt.UTC)
    old = [
        item(
            f"Old {n}",
            guid=f"o{n}",
            date=email.utils.format_datetime(start + dt.timedelta(hours=n)),
        )
        for n in range(4990)
    ]
    event = [
        item(
            f"Event {n}",
            guid=f"e{n}",
            categories=TAG,
            date=f"Wed, 05 Jul 2017 0{n}:00:00 +0000",
        )
        for n in range(10)
    ]
    register(agg, site, "/oldest-first", rss(*old, *event))
    summary = agg.update_feeds()
    assert summary.new == 10
    assert sorted(titles(agg)) == [f"Event {n}" for n in range(10)]
    assert "5,000 entries; only the newest 1,000" in row(agg, "/oldest-first").problem


def test_a_locked_database_is_waited_for(make_agg, site, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite locking")
    agg = make_agg()
    register(agg, site, "/b")
    path = database_url.removeprefix("sqlite:///")
    locked = threading.Event()

    def hold_lock():
        conn = sqlite3.connect(path)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(1.5)
        conn.rollback()
        conn.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait()
    summary = agg.update_feeds()
    holder.join()
    assert (summary.new, summary.failed) == (1, 0)


def test_many_feeds_on_one_host_are_limited(make_agg, site):
    agg = make_agg(polling={"per_host_concurrency": 2, "concurrency": 16})
    active = 0
    peak = 0
    lock = threading.Lock()

    def slow(path):
        def handler(h):
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.2)
            with lock:
                active -= 1
            return Response(GOOD.replace(b"good", path.encode()), conditional=False)

        return handler

    for n in range(8):
        register(agg, site, f"/h{n}")
        site.routes[f"/h{n}"] = slow(f"h{n}")
    agg.update_feeds()
    assert peak == 2


def test_cache_headers_push_the_next_poll_later_but_capped(make_agg, site, clock):
    agg = make_agg(polling={"interval_minutes": 10})
    register(agg, site, "/cached", headers={"Cache-Control": "public, max-age=3600"})
    register(
        agg,
        site,
        "/forever",
        atom(atom_entry("x", id="x")),
        headers={"Cache-Control": "max-age=31536000"},
    )
    agg.update_feeds()
    cached = (row(agg, "/cached").next_due_at - clock.now).total_seconds()
    forever = (row(agg, "/forever").next_due_at - clock.now).total_seconds()
    assert 3600 <= cached < 3700
    assert forever == 2 * 3600


def test_moved_permanently_is_stored_temporary_is_not(make_agg, site):
    agg = make_agg()
    register(agg, site, "/perm")
    register(agg, site, "/temp", atom(atom_entry("t", id="t")))
    serve_feed(site, "/perm-new", GOOD)
    serve_feed(site, "/temp-new", atom(atom_entry("t", id="t")))
    site.routes["/perm"] = Response(status=308, headers={"Location": "/perm-new"})
    site.routes["/temp"] = Response(status=307, headers={"Location": "/temp-new"})
    agg.update_feeds()
    urls = sorted(r.url for r in agg.status())
    assert urls == sorted([site.url("/perm-new"), site.url("/temp")])


def test_long_response_headers_are_read(make_agg, site):
    # some blog hosts send content-security policies and cookies of many kilobytes
    agg = make_agg()
    register(agg, site, "/feed", GOOD, headers={"Content-Security-Policy": "a" * 12_000})
    agg.update_feeds()
    assert row(agg, "/feed").last_result == "ok"
    assert titles(agg) == ["Good post"]
