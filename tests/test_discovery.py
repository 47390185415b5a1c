"""Registering contributors: discovery from homepages over loopback HTTP."""

from __future__ import annotations

import pytest

from aggregator.errors import DiscoveryError, DuplicateFeedError
from aggregator.loopback import Response

from .conftest import atom, atom_entry, item, rss, serve_feed

FEED = rss(item("A post", guid="1", categories=("Co-production Week",)), title="The blog")


def page(*links: str, base: str = "") -> Response:
    base_tag = f'<base href="{base}">' if base else ""
    head = base_tag + "".join(links)
    return Response(
        f"<!doctype html><html><head>{head}</head><body>hi</body></html>".encode(),
        content_type="text/html",
    )


def link(href: str, kind: str = "application/rss+xml", title: str = "Feed") -> str:
    return f'<link rel="alternate" type="{kind}" title="{title}" href="{href}">'


def feed_urls(agg) -> list[str]:
    return [f.url for c in agg.contributors() for f in c.feeds]


def test_relative_link_is_resolved_against_the_page(make_agg, site):
    agg = make_agg()
    site.routes["/blog/"] = page(link("feed.xml"))
    serve_feed(site, "/blog/feed.xml", FEED)
    result = agg.add_contributor("Ann", site.url("/blog/"))
    assert [(f.url, f.title, f.entries) for f in result.feeds] == [
        (site.url("/blog/feed.xml"), "The blog", 1)
    ]


def test_absolute_link_and_base_href(make_agg, site):
    agg = make_agg()
    site.routes["/a/"] = page(link(site.url("/elsewhere/rss")))
    site.routes["/b/"] = page(link("feeds/atom"), base=site.url("/base/"))
    serve_feed(site, "/elsewhere/rss", FEED)
    serve_feed(site, "/base/feeds/atom", atom(atom_entry("x", id="1")))
    agg.add_contributor("A", site.url("/a/"))
    agg.add_contributor("B", site.url("/b/"))
    assert feed_urls(agg) == [site.url("/elsewhere/rss"), site.url("/base/feeds/atom")]


def test_posts_feed_is_preferred_over_comments_feed(make_agg, site):
    agg = make_agg()
    site.routes["/wp/"] = page(
        link("/wp/comments/feed/", title="Blog » Comments Feed"),
        link("/wp/feed/", title="Blog » Feed"),
    )
    serve_feed(site, "/wp/comments/feed/", rss(item("Comment on x", guid="c")))
    serve_feed(site, "/wp/feed/", FEED)
    agg.add_contributor("WP", site.url("/wp/"))
    assert feed_urls(agg) == [site.url("/wp/feed/")]


def test_missing_link_falls_back_to_common_paths(make_agg, site):
    agg = make_agg()
    site.routes["/"] = page()
    serve_feed(site, "/atom.xml", atom(atom_entry("x", id="1")))
    agg.add_contributor("Static", site.url("/"))
    assert feed_urls(agg) == [site.url("/atom.xml")]


def test_a_broken_advertised_link_falls_through_to_the_next(make_agg, site):
    agg = make_agg()
    site.routes["/x/"] = page(link("/x/missing.xml"), link("/x/ok.xml"))
    serve_feed(site, "/x/ok.xml", FEED)
    agg.add_contributor("X", site.url("/x/"))
    assert feed_urls(agg) == [site.url("/x/ok.xml")]


def test_no_feed_anywhere_is_a_clear_error(make_agg, site):
    agg = make_agg()
    site.routes["/"] = page()
    with pytest.raises(DiscoveryError, match=r"no feed found at .*--feed"):
        agg.add_contributor("Nobody", site.url("/"))
    assert agg.contributors() == []


def test_a_feed_url_is_accepted_as_is_and_cannot_be_registered_twice(make_agg, site):
    agg = make_agg()
    url = serve_feed(site, "/feed", FEED)
    agg.add_contributor("Ann", url)
    with pytest.raises(DuplicateFeedError, match="already registered"):
        agg.add_contributor("Ann again", url)
    # two contributors may share a homepage when their feeds differ
    serve_feed(site, "/other", rss(item("b", guid="b")))
    agg.add_contributor("Bob", url, feed=site.url("/other"))
    assert sorted(c.name for c in agg.contributors()) == ["Ann", "Bob"]


def test_blogger_and_wordpress_label_feeds_are_found_and_polled(make_agg, site):
    agg = make_agg()
    blogger = atom(atom_entry("x", id="1")).replace(
        b"<title>", b"<generator uri='http://www.blogger.com'>Blogger</generator><title>", 1
    )
    serve_feed(site, "/feeds/posts/default", blogger)
    label = atom(
        atom_entry(
            "Old event post",
            id="old",
            link="http://b.example/old",
            categories=("Co-production Week",),
        )
    )
    serve_feed(site, "/feeds/posts/default/-/Co-production%20Week", label)
    result = agg.add_contributor("Blogger person", site.url("/feeds/posts/default"))
    assert [(f.kind, f.url) for f in result.feeds] == [
        ("main", site.url("/feeds/posts/default")),
        ("label", site.url("/feeds/posts/default/-/Co-production%20Week")),
    ]
    agg.update_feeds()
    # the label feed brought a post that had fallen off the main feed
    assert [p.title for p in agg.storage.posts.latest(10)] == ["Old event post"]


def test_wordpress_tag_feed(make_agg, site):
    agg = make_agg()
    serve_feed(
        site,
        "/feed/",
        FEED.replace(
            b"<title>The blog</title>",
            b"<title>WP</title><generator>https://wordpress.org/?v=6</generator>",
        ),
    )
    serve_feed(site, "/tag/co-production-week/feed/", rss(item("t", guid="t")))
    result = agg.add_contributor("WP", site.url("/feed/"))
    assert [f.url for f in result.feeds if f.kind == "label"] == [
        site.url("/tag/co-production-week/feed/")
    ]


def test_seeded_contributors_are_discovered_at_the_next_poll(make_agg, site):
    site.routes["/seed/"] = page(link("/seed/rss"))
    serve_feed(site, "/seed/rss", FEED)
    site.routes["/nothing/"] = page()
    agg = make_agg(
        contributors=[
            {"name": "Seed", "url": site.url("/seed/")},
            {"name": "Empty", "url": site.url("/nothing/")},
        ]
    )
    assert [(c.name, c.feeds) for c in agg.contributors()] == [("Empty", []), ("Seed", [])]
    summary = agg.update_feeds()
    assert summary.new == 1
    people = {c.name: c for c in agg.contributors()}
    assert [f.url for f in people["Seed"].feeds] == [site.url("/seed/rss")]
    assert people["Empty"].discovery_error.startswith("no feed found at")
