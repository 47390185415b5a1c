"""WebSub: the aggregator subscribes to the hub a feed names, answers the hub's
verification of intent, takes only signed pushes (stored like a poll's, published at
once), renews its lease, unsubscribes when the feed is removed, and polls pushed feeds
less often. Against a spec-following hub on loopback (tests/websub_hub.py) and the web
app under uvicorn."""

from __future__ import annotations

import datetime as dt
import time

import feedparser
import httpx

from .conftest import atom, atom_entry, serve_feed, web_server
from .websub_hub import Hub

TAG = ("Co-production Week",)


def feed_with_hub(hub: str, topic: str, *titles: str) -> bytes:
    entries = [
        atom_entry(t, id=f"tag:b,{n}", link=f"https://b.example/{n}", categories=TAG)
        for n, t in enumerate(titles)
    ]
    links = f"<link rel='hub' href='{hub}'/><link rel='self' href='{topic}'/>"
    return atom(links, *entries)


def wait_for(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def subscribed(tmp_path, site, hub, web):
    _base, agg, _mail = web
    topic = site.url("/blog/feed")
    serve_feed(
        site,
        "/blog/feed",
        feed_with_hub(hub.url, topic, "First post"),
        content_type="application/atom+xml",
    )
    agg.add_contributor("Ann", site.url("/blog/"), feed=topic)
    agg.update_feeds()
    assert "asking its hub to push" in agg.status()[0].result
    lines = agg.websub.send_requests()
    assert lines == [f"websub: subscribe {topic} at {hub.url}: asked"]
    assert hub.verified.wait(10)
    return topic


def test_a_post_pushed_by_the_hub_is_published_without_a_poll(tmp_path, site):
    with Hub() as hub, web_server(tmp_path, polling={"websub": True}) as web:
        base, agg, _mail = web
        topic = subscribed(tmp_path, site, hub, web)
        request = hub.requests[0]
        assert request["hub.callback"].startswith(base + "/websub/")
        assert len(request["hub.callback"]) > len(base + "/websub/") + 30  # unguessable
        assert request["hub.secret"] and request["hub.topic"] == topic
        assert [v[:2] for v in hub.verifications] == [("subscribe", 200)]
        assert agg.status()[0].result.endswith("· pushed")
        polls = len(site.hits("/blog/feed"))
        pushed = feed_with_hub(hub.url, topic, "First post", "Pushed post")
        assert hub.distribute(topic, pushed, "application/atom+xml") == [202]
        atom_file = agg.settings.output_dir / "feed.atom"
        assert wait_for(lambda: atom_file.exists() and b"Pushed post" in atom_file.read_bytes())
        assert len(site.hits("/blog/feed")) == polls  # no poll: the hub brought it
        titles = {e.title for e in feedparser.parse(str(atom_file)).entries}
        assert titles == {"First post", "Pushed post"}


def test_a_hub_named_only_in_the_link_header_is_subscribed_to(tmp_path, site):
    """WebSub's discovery reads the answer's `Link` headers first (where some publishers
    name their hub, the feed itself saying nothing); before, only the feed's own links
    were read and such a feed was polled, never pushed."""
    with Hub() as hub, web_server(tmp_path, polling={"websub": True}) as web:
        _base, agg, _mail = web
        topic = site.url("/blog/feed")
        header = f'<{hub.url}>; rel="hub", </blog/feed>; rel="self"'  # self as a relative address
        entry = atom_entry("First post", id="tag:b,1", link="https://b.example/1", categories=TAG)
        serve_feed(
            site,
            "/blog/feed",
            atom("", entry),
            content_type="application/atom+xml",
            headers={"Link": header},
        )
        agg.add_contributor("Ann", site.url("/blog/"), feed=topic)
        agg.update_feeds()
        assert "asking its hub to push" in agg.status()[0].result
        assert agg.websub.send_requests() == [f"websub: subscribe {topic} at {hub.url}: asked"]
        assert hub.verified.wait(10)
        assert hub.requests[0]["hub.topic"] == topic
        assert agg.status()[0].result.endswith("· pushed")


def test_a_link_header_that_is_no_address_costs_the_feed_nothing(make_agg, site):
    """Hostile `Link` headers (addresses the URL parser raises on, lazily, with an
    IndexError or a ValueError) name no hub, and the feed reads as if they were not there."""
    agg = make_agg(polling={"websub": True})
    for n, header in enumerate(['<http://[12]l@@>; rel="hub"', '<//[f:x-97e:4]>; rel="hub"']):
        entry = atom_entry(
            f"Post {n}", id=f"tag:b,{n}", link=f"https://b.example/{n}", categories=TAG
        )
        url = serve_feed(site, f"/b{n}/feed", atom("", entry), headers={"Link": header})
        agg.add_contributor(f"Blog {n}", url, feed=url)
    agg.update_feeds()
    assert [h.result for h in agg.status()] == ["ok", "ok"]
    assert agg.post_count() == 2


def test_unsigned_or_badly_signed_pushes_are_dropped(tmp_path, site):
    with Hub() as hub, web_server(tmp_path, polling={"websub": True}) as web:
        base, agg, _mail = web
        topic = subscribed(tmp_path, site, hub, web)
        for key in (None, "not the secret"):
            forged = feed_with_hub(hub.url, topic, "First post", f"Forged {key}")
            assert hub.distribute(topic, forged, "application/atom+xml", sign_with=key) == [202]
        # a signature header of any characters is dropped the same way, never a 500
        callback = hub.requests[0]["hub.callback"]
        forged = feed_with_hub(hub.url, topic, "First post", "Forged again")
        odd_header = {"X-Hub-Signature": "sha256=\xe9".encode("latin-1")}
        odd = httpx.post(callback, content=forged, headers=odd_header)
        assert odd.status_code == 202
        # and a stranger's callback address takes nothing (nor reads what is sent)
        assert httpx.post(base + "/websub/no-such-token", content=forged).status_code == 202
        time.sleep(0.5)
        assert agg.post_count() == 1


def test_a_verification_for_another_topic_or_mode_is_refused(tmp_path, site):
    with Hub() as hub, web_server(tmp_path, polling={"websub": True}) as web:
        base, agg, _mail = web
        topic = subscribed(tmp_path, site, hub, web)
        callback = hub.requests[0]["hub.callback"]
        assert hub.verify_with(
            callback, **{"hub.mode": "subscribe", "hub.topic": topic + "x", "hub.challenge": "c1"}
        ) == (404, "")
        assert hub.verify_with(
            callback, **{"hub.mode": "unsubscribe", "hub.topic": topic, "hub.challenge": "c2"}
        ) == (404, "")
        assert hub.verify_with(
            base + "/websub/not-a-token",
            **{"hub.mode": "subscribe", "hub.topic": topic, "hub.challenge": "c3"},
        ) == (404, "")
        assert agg.status()[0].result.endswith("· pushed")  # still as it was


def test_leases_are_renewed_and_removal_unsubscribes(tmp_path, site):
    with Hub() as hub, web_server(tmp_path, polling={"websub": True}) as web:
        _base, agg, _mail = web
        topic = subscribed(tmp_path, site, hub, web)
        assert agg.websub.send_requests() == []  # a lease of ten days: nothing to renew
        lease = int(hub.requests[0]["hub.lease_seconds"])
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lease) - dt.timedelta(hours=12)
        agg.clock = lambda: later  # half a day before the lease ends
        hub.verified.clear()
        assert agg.websub.send_requests() == [f"websub: subscribe {topic} at {hub.url}: asked"]
        assert hub.verified.wait(10)
        agg.clock = lambda: dt.datetime.now(dt.UTC)
        agg.remove_contributor("Ann")
        hub.verified.clear()
        assert agg.websub.send_requests() == [f"websub: unsubscribe {topic} at {hub.url}: asked"]
        assert hub.verified.wait(10)
        assert hub.verifications[-1][:2] == ("unsubscribe", 200)
        assert hub.subscribers == {}
        assert agg.websub.send_requests() == []  # forgotten once the hub confirmed


def test_a_pushed_feed_is_polled_less_often(tmp_path, site):
    with Hub() as hub, web_server(tmp_path, polling={"websub": True}) as web:
        _base, agg, _mail = web
        subscribed(tmp_path, site, hub, web)
        agg.update_feeds(include_not_due=True)
        wait = agg.status()[0].next_try - dt.datetime.now(dt.UTC)
        assert wait > dt.timedelta(minutes=100)  # four intervals of 30 minutes, not one


def test_a_hub_on_a_private_address_is_refused_without_allow_private(make_agg, site):
    agg = make_agg(polling={"websub": True})
    topic = site.url("/blog/feed")
    serve_feed(
        site,
        "/blog/feed",
        feed_with_hub("http://10.0.0.1/hub", topic, "First"),
        content_type="application/atom+xml",
    )
    agg.add_contributor("Ann", site.url("/blog/"), feed=topic)
    agg.update_feeds()
    strict = make_agg(polling={"websub": True, "allow_private_addresses": False})
    [line] = strict.websub.send_requests()
    assert "refused" in line or "private" in line or "not allowed" in line, line
