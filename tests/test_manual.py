"""Posts added by hand (`aggregator posts add`, the dashboard's form): saved pages of the
common shapes, served over loopback, become event posts in the feed, the page and the
next digest, and stay one post when the contributor's feed later carries them."""

from __future__ import annotations

import datetime as dt

import feedparser
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.errors import AggregatorError
from aggregator.loopback import Response
from aggregator.web import create_app

from .conftest import item, rss, serve_feed

OPEN_GRAPH = """<!doctype html><html><head><title>Ann's blog</title>
<meta property="og:title" content="What co-production means to us">
<meta property="og:description" content="We met on Monday and planned the week together.">
<meta property="og:url" content="{url}">
<meta name="author" content="Ann Example">
<meta property="article:published_time" content="2017-07-04T10:00:00+01:00">
</head><body><article><h1>What co-production means to us</h1><p>We met.</p></article>
</body></html>"""

JSON_LD = """<!doctype html><html><head><title>News</title>
<script type="application/ld+json">{{"@context": "https://schema.org", "@type": "NewsArticle",
"headline": "Carers lead the week in Leeds", "url": "{url}",
"author": {{"@type": "Person", "name": "Sam Reporter"}},
"datePublished": "2017-07-05T08:30:00Z",
"description": "A story about carers running the events."}}</script>
</head><body><p>Carers ran every event this year.</p></body></html>"""

PLAIN = """<!doctype html><html><head><title>A post on a platform without feeds</title>
<meta name="description" content="Notes from the Tuesday workshop.">
<meta name="author" content="Bea Jones">
</head><body><main><h1>A post on a platform without feeds</h1>
<p>Published <time datetime="2017-07-04">4 July 2017</time>.</p>
<p>Notes from the Tuesday workshop, with everyone who came.</p></main></body></html>"""


def page(site, path: str, html: str) -> str:
    url = site.url(path)
    site.routes[path] = Response(
        html.format(url=url).encode(), content_type="text/html; charset=utf-8"
    )
    return url


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (OPEN_GRAPH, ("What co-production means to us", "Ann Example", dt.date(2017, 7, 4))),
        (JSON_LD, ("Carers lead the week in Leeds", "Sam Reporter", dt.date(2017, 7, 5))),
        (PLAIN, ("A post on a platform without feeds", "Bea Jones", dt.date(2017, 7, 4))),
    ],
    ids=["opengraph", "json-ld", "meta"],
)
def test_a_page_added_by_hand_is_published_like_any_post(make_agg, site, clock, shape, expected):
    title, author, day = expected
    agg = make_agg()
    url = page(site, "/story", shape)
    added = agg.add_post(url)
    assert (added.title, added.contributor, added.new) == (title, author, True)
    assert added.published.date() == day
    entries = feedparser.parse(str(agg.settings.output_dir / "feed.atom")).entries
    assert [(e.title, e.link, e.author) for e in entries] == [(title, url, author)]
    assert title in (agg.settings.output_dir / "index.html").read_text()
    agg.add_subscriber("reader@example.org")
    clock.advance(hours=1)
    made = agg.storage.posts.make_digest(clock.now.date(), clock.now, allow_empty=False)
    assert [p.title for p in made] == [title]
    assert agg.explain(url).included


def test_a_post_added_by_hand_stays_one_when_the_feed_carries_it(make_agg, site):
    agg = make_agg()
    url = page(site, "/story", OPEN_GRAPH)
    agg.add_post(url, "Ann")
    assert not agg.add_post(url, "Ann").new  # added twice: still one
    feed = serve_feed(
        site,
        "/ann/feed",
        rss(
            item(
                "What co-production means to us",
                guid="x1",
                link=url,
                categories=("Co-production Week",),
            )
        ),
    )
    agg.add_contributor("Ann", site.url("/ann/"), feed=feed)
    summary = agg.update_feeds()
    assert (summary.new, summary.duplicates) == (0, 1)
    assert agg.post_count() == 1
    # the contributor's feeds are healthy; the posts added by hand are no feed to watch
    assert [f.url for f in agg.status()] == [feed]


def test_pages_that_cannot_be_added_say_why(make_agg, site):
    agg = make_agg(event={"collect_from": "2017-07-05"})
    with pytest.raises(AggregatorError, match="outside the collection dates"):
        agg.add_post(page(site, "/old", OPEN_GRAPH))
    feed = serve_feed(site, "/feed", rss(item("A", guid="a")))
    with pytest.raises(AggregatorError, match="is not a web page"):
        agg.add_post(feed)
    with pytest.raises(AggregatorError, match="cannot read"):
        agg.add_post(site.url("/missing"))
    with pytest.raises(AggregatorError, match="not a web address"):
        agg.add_post("ftp://example.org/x")
    assert agg.post_count() == 0


def test_the_command_and_the_dashboard_form(make_agg, site, tmp_path, database_url):
    agg = make_agg()
    config = tmp_path / "event.toml"
    config.write_text(
        '[event]\nname = "Co-production Week 2017"\ntags = ["Co-production Week"]\n'
        f'[database]\nurl = "{database_url}"\n[publish]\noutput_dir = "{tmp_path / "output"}"\n'
        "[polling]\nallow_private_addresses = true\n"
    )
    url = page(site, "/story", JSON_LD)
    done = CliRunner().invoke(
        app, ["--config", str(config), "posts", "add", url, "--contributor", "Leeds News"]
    )
    assert done.exit_code == 0, done.output
    assert done.output.strip() == (
        "Added “Carers lead the week in Leeds” by Leeds News, dated 5 July 2017; "
        "the outputs are republished."
    )
    other = page(site, "/notes", PLAIN)
    agg.add_organiser("org@example.org", "a long enough password")
    import re

    with TestClient(create_app(agg), base_url="https://example.org") as web:
        token = re.search(r'name="csrf" value="([^"]+)"', web.get("/admin/login").text).group(1)
        web.post(
            "/admin/login",
            data={"email": "org@example.org", "password": "a long enough password", "csrf": token},
        )
        token = re.search(r'name="csrf" value="([^"]+)"', web.get("/admin").text).group(1)
        answer = web.post("/admin/add-post", data={"url": other, "contributor": "", "csrf": token})
        assert "Added “A post on a platform without feeds” by Bea Jones" in answer.text
