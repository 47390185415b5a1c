""" "Is my post in?": `aggregator explain` and the public /check page give each reason
in plain words, from what is stored and from a fresh read of the blog's feed (served
over loopback)."""

from __future__ import annotations

import datetime as dt
import re

from starlette.testclient import TestClient
from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.loopback import Response
from aggregator.web import create_app

from .conftest import item, rss, serve_feed

TAG = ("Co-production Week",)


def ann_with_one_post(agg, site) -> None:
    """Ann's blog, with one event post at /blog/1, polled once."""
    url = serve_feed(
        site, "/blog/feed", rss(item("Post 1", guid="p1", link=site.url("/blog/1"), categories=TAG))
    )
    agg.add_contributor("Ann", site.url("/blog/"), feed=url)
    agg.update_feeds()


def post(n: int, **kwargs) -> str:
    kwargs.setdefault("categories", TAG)
    return item(f"Post {n}", guid=f"p{n}", link=f"http://127.0.0.1/blog/{n}", **kwargs)


def test_an_included_post_says_since_when_and_which_digest(make_agg, site, clock):
    agg = make_agg()
    ann_with_one_post(agg, site)
    answer = agg.explain(site.url("/blog/1"))
    assert answer.included
    assert answer.sentence.startswith("Included since 5 July 2017")
    assert "“Post 1”" in answer.sentence and "next daily digest" in answer.sentence
    # any form of the address: scheme, tracking parameters, Blogger's ?m=1, a fragment
    other = site.url("/blog/1").replace("http://", "https://") + "?utm_source=x&m=1#top"
    assert agg.explain(other).sentence == answer.sentence
    agg.add_subscriber("ann@example.org")
    clock.advance(hours=1)
    agg.storage.posts.make_digest(dt.date(2017, 7, 5), clock.now, allow_empty=True)
    assert "in the digest of 5 July 2017" in agg.explain(site.url("/blog/1")).sentence


def test_a_hidden_post_keeps_its_reason_from_the_public(make_agg, site):
    agg = make_agg()
    ann_with_one_post(agg, site)
    agg.hide_post(site.url("/blog/1"))
    answer = agg.explain(site.url("/blog/1"))
    assert not answer.included
    assert answer.sentence == "This post is not shown in the feed."
    assert "hid it" in answer.private
    assert all("hid" not in line for line in answer.lines(organiser=False))


def test_a_copy_names_the_post_shown_instead(make_agg, site):
    agg = make_agg()
    words = "<p>" + "The same words, cross-posted on two blogs. " * 10 + "</p>"
    first = serve_feed(
        site,
        "/a/feed",
        rss(item("Original", guid="a1", link=site.url("/a/1"), categories=TAG, content=words)),
    )
    agg.add_contributor("Ann", site.url("/a/"), feed=first)
    agg.update_feeds()
    second = serve_feed(
        site,
        "/b/feed",
        rss(item("Copy", guid="b1", link=site.url("/b/1"), categories=TAG, content=words)),
    )
    agg.add_contributor("Bea", site.url("/b/"), feed=second)
    agg.update_feeds()
    answer = agg.explain(site.url("/b/1"))
    assert answer.sentence.startswith(
        "It was taken as a copy of an earlier post, “Original” by Ann"
    )
    assert second in answer.private


def test_reasons_read_from_the_blogs_feed(make_agg, site):
    agg = make_agg(event={"collect_from": "2017-07-01", "collect_until": "2017-07-31"})
    ann_with_one_post(agg, site)
    # then the blog writes more, before the next poll
    serve_feed(
        site,
        "/blog/feed",
        rss(
            item("Post 1", guid="p1", link=site.url("/blog/1"), categories=TAG),
            item(
                "Unlabelled", guid="p2", link=site.url("/blog/2"), categories=("carers", "meetings")
            ),
            item(
                "Early",
                guid="p3",
                link=site.url("/blog/3"),
                categories=TAG,
                date="Mon, 05 Jun 2017 08:00:00 +0000",
            ),
            item("Fresh", guid="p4", link=site.url("/blog/4"), categories=TAG),
            item("Bare", guid="p5", link=site.url("/blog/5")),
        ),
    )
    unlabelled = agg.explain(site.url("/blog/2"))
    assert (
        unlabelled.sentence
        == "It does not carry the event's label: its labels are carers and meetings."
    )
    assert (
        unlabelled.todo
        == "Add the label Co-production Week; it will be picked up within 30 minutes."
    )
    assert agg.explain(site.url("/blog/5")).sentence.endswith("it has no labels.")
    early = agg.explain(site.url("/blog/3")).sentence
    assert early == (
        "It is dated 5 June 2017, outside the event's collection dates"
        " (from 1 July 2017 until 31 July 2017)."
    )
    fresh = agg.explain(site.url("/blog/4"))
    assert fresh.sentence.startswith("The feed lists it and it counts as an event post")
    assert fresh.todo == "It will be picked up within 30 minutes, at the next poll."
    missing = agg.explain(site.url("/blog/99"))
    assert missing.sentence == "The feed of Ann's blog does not list this post."
    # a feed that cannot be read now says so, with its reason
    site.routes["/blog/feed"] = Response(b"oops", status=500, content_type="text/plain")
    broken = agg.explain(site.url("/blog/4"))
    assert broken.sentence == "The blog's feed could not be read just now."
    assert "500" in broken.private  # the server's answer is for organisers only


def test_blogs_not_registered_waiting_or_without_a_feed(make_agg, site):
    agg = make_agg()
    nobody = agg.explain("https://unknown.example/2017/07/post.html")
    assert nobody.sentence == "No registered blog has this address."
    assert nobody.todo == "If it is yours, register it at https://example.org/coproweek/register."
    url = serve_feed(site, "/wait/feed", rss(post(1)))
    agg.register_blog("Wendy", url, "wendy@example.org")
    # the registration's host is loopback here, as every test blog is: a blog of its own
    waiting = agg.explain(site.url("/wait/2017/post.html"))
    assert waiting.sentence == "The blog is registered and waiting for an organiser's approval."
    agg.reject_registration(agg.registrations()[0].id)
    contributor = agg.storage.feeds.add_contributor(
        "Nof", "https://nofeed.example/", False, agg.now()
    )
    agg.storage.feeds.set_discovery_error(contributor, "no feed found on the page")
    lost = agg.explain("https://nofeed.example/a-post")
    assert lost.sentence == "The blog of Nof is registered, but its feed was not found yet."
    assert lost.private == "Why: no feed found on the page."
    assert agg.explain("not an address").sentence.startswith("That is not a web address")


def test_the_command_and_the_public_page(make_agg, site, tmp_path, database_url):
    agg = make_agg()
    ann_with_one_post(agg, site)
    agg.hide_post(site.url("/blog/1"))
    config = tmp_path / "event.toml"
    config.write_text(
        '[event]\nname = "Co-production Week 2017"\nsite_url = "https://example.org/coproweek/"\n'
        'tags = ["Co-production Week"]\n'
        f'[database]\nurl = "{database_url}"\n[publish]\noutput_dir = "{tmp_path / "output"}"\n'
        "[polling]\nallow_private_addresses = true\n"
    )
    shown = CliRunner().invoke(app, ["--config", str(config), "explain", site.url("/blog/1")])
    assert shown.exit_code == 0
    assert shown.output.splitlines()[0] == "This post is not shown in the feed."
    assert "An organiser hid it" in shown.output
    with TestClient(create_app(agg), base_url="https://example.org") as client:
        page = client.get("/check")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        answer = client.post("/check", data={"url": site.url("/blog/1"), "csrf": token})
        main = answer.text.split("<main", 1)[1]  # the page's words, not its stylesheet
        text = " ".join(re.sub(r"<[^>]+>", " ", main).split())
        assert "Not yet. This post is not shown in the feed." in text
        assert "hid" not in text  # the organisers' reason stays theirs
        codes = [
            client.post("/check", data={"url": site.url("/blog/1"), "csrf": token}).status_code
            for _ in range(20)
        ]
    assert codes.count(200) == 19 and codes[-1] == 429


def test_a_blog_whose_feed_lives_elsewhere_is_found_by_its_posts(make_agg, site):
    agg = make_agg()
    entry = item("Post 1", guid="p1", link="https://ann.example/2017/1", categories=TAG)
    url = serve_feed(site, "/feedburner/ann", rss(entry))
    agg.add_contributor("Ann", site.url("/feedburner/"), feed=url)
    agg.update_feeds()
    later = item("Post 2", guid="p2", link="https://ann.example/2017/2", categories=("carers",))
    serve_feed(site, "/feedburner/ann", rss(later, entry))
    answer = agg.explain("https://www.ann.example/2017/2")
    assert answer.sentence == "It does not carry the event's label: its labels are carers."
