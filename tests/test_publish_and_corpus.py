"""The published outputs: valid Atom (RFC 4287 RELAX NG), the page, OPML; and every
real-world feed of the shared corpus polled over HTTP without a crash."""

from __future__ import annotations

import functools
import urllib.parse
import xml.etree.ElementTree as ET

import feedparser
import pytest
from lxml import etree

from .conftest import ATOM_RNC, CORPUS, atom, atom_entry, item, published, rss, serve_feed

ATOM_NS = "{http://www.w3.org/2005/Atom}"
CORPUS_FILES = sorted(p for p in CORPUS.glob("*") if p.suffix in (".xml", ".json"))


@functools.cache
def atom_schema() -> etree.RelaxNG:
    import rnc2rng

    rng = rnc2rng.dumps(rnc2rng.load(str(ATOM_RNC)))
    rng = rng.replace('xmlns:local=""', "")
    return etree.RelaxNG(etree.fromstring(rng.encode()))


def assert_valid_atom(path) -> None:
    doc = etree.parse(str(path))
    schema = atom_schema()
    assert schema.validate(doc), schema.error_log
    # the two Schematron rules RELAX NG ignores: an author somewhere, a link or content
    for entry in doc.getroot().iter(ATOM_NS + "entry"):
        assert entry.find(ATOM_NS + "author") is not None
        assert (
            entry.find(ATOM_NS + "content") is not None or entry.find(ATOM_NS + "link") is not None
        )
    assert feedparser.parse(str(path)).bozo == 0


@pytest.mark.skipif(not ATOM_RNC.exists(), reason="shared/spec/atom.rnc is not present")
def test_published_feed_is_valid_atom_with_everything_design_promises(make_agg, site):
    agg = make_agg(publish={"max_entries": 2})
    url = serve_feed(
        site,
        "/b",
        rss(
            item(
                "Older",
                guid="tag:b,1",
                link="http://b.example/1",
                categories=("Co-production Week",),
                date="Mon, 03 Jul 2017 08:00:00 +0000",
            ),
            item(
                "Newest: 1 &lt; 2 &amp; more",
                guid="tag:b,2",
                link="http://b.example/2",
                categories=("Co-production Week", "carers"),
                date="Wed, 05 Jul 2017 08:00:00 +0000",
                content="<p onclick='x()'>Hi<script>alert(1)</script></p>",
            ),
            item(
                "Middle",
                guid="tag:b,3",
                link="http://b.example/3",
                categories=("Co-production Week",),
                date="Tue, 04 Jul 2017 08:00:00 +0000",
            ),
            title="Bea's blog",
        ),
    )
    agg.add_contributor("Bea", url, feed=url)
    agg.update_feeds()
    entries = published(agg)
    path = agg.settings.output_dir / "feed.atom"
    assert_valid_atom(path)
    assert [e.title for e in entries] == ["Newest: 1 < 2 & more", "Middle"]  # newest first, max 2
    newest = entries[0]
    assert newest.id == "tag:b,2"
    assert newest.link == "http://b.example/2"
    assert newest.author == "Bea"
    assert [t.term for t in newest.tags] == ["Co-production Week", "carers"]
    assert newest.content[0].value == "<p>Hi</p>"
    assert newest.published.startswith("2017-07-05")
    root = ET.parse(path).getroot()
    self_link = [ln.get("href") for ln in root.findall(ATOM_NS + "link") if ln.get("rel") == "self"]
    assert self_link == ["https://example.org/coproweek/feed.atom"]
    source = root.find(f"{ATOM_NS}entry/{ATOM_NS}source")
    assert source.find(ATOM_NS + "title").text == "Bea's blog"
    assert source.find(ATOM_NS + "link").get("href") == url
    page = (agg.settings.output_dir / "index.html").read_text()
    assert "Newest: 1 &lt; 2 &amp; more" in page and "<script>" not in page


def test_rss_and_json_feed_carry_the_same_entries_as_the_atom_feed(make_agg, site):
    import json
    from pathlib import Path

    import jsonschema

    agg = make_agg()
    posts = [
        item(
            f"Post {n} &amp; more",
            guid=f"tag:b,{n}",
            link=f"http://b.example/{n}",
            categories=("Co-production Week", "carers"),
            date=f"Mon, 0{n + 1} Jul 2017 08:00:00 +0000",
        )
        for n in range(3)
    ]
    url = serve_feed(site, "/b", rss(*posts))
    agg.add_contributor("Ann", url, feed=url)
    agg.update_feeds()
    entries = published(agg)  # publishes, and reads feed.atom back
    out = agg.settings.output_dir
    expected = [(e.id, e.title, e.link) for e in entries]
    assert len(expected) == 3
    # RSS 2.0, as an RSS-to-email service reads it
    rss_feed = feedparser.parse(str(out / "rss.xml"))
    assert rss_feed.bozo == 0 and rss_feed.version == "rss20"
    assert [(e.id, e.title, e.link) for e in rss_feed.entries] == expected
    assert all(e.author == "Ann" for e in rss_feed.entries)
    # JSON Feed 1.1, valid against its published schema
    schema = json.loads((Path(__file__).parent / "spec/jsonfeed/schema-v1.1.json").read_text())
    document = json.loads((out / "feed.json").read_text())
    jsonschema.validate(document, schema, format_checker=jsonschema.FormatChecker())
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert [(i["id"], i["title"], i["url"]) for i in document["items"]] == expected
    assert document["items"][0]["tags"] == ["Co-production Week", "carers"]
    assert document["items"][0]["authors"] == [{"name": "Ann"}]
    # the page names all three as alternates
    head = (out / "index.html").read_text().split("</head>")[0]
    for kind, name in (
        ("application/atom+xml", "feed.atom"),
        ("application/rss+xml", "rss.xml"),
        ("application/feed+json", "feed.json"),
    ):
        assert f'type="{kind}"' in head and f'href="{name}"' in head


def test_opml_export_and_import_round_trip(make_agg, site, tmp_path):
    agg = make_agg()
    a = serve_feed(
        site,
        "/a",
        rss(item("a", guid="a")),
    )
    b = serve_feed(site, "/b", atom(atom_entry("b", id="b")))
    agg.add_contributor("Ann", site.url("/home-a/"), feed=a)
    agg.add_contributor("Bob & Co", b, all_posts=True)
    agg.publish()
    exported = tmp_path / "export.opml"
    agg.export_opml(exported)
    assert exported.read_bytes() == (agg.settings.output_dir / "contributors.opml").read_bytes()
    other = make_agg(database={"url": f"sqlite:///{tmp_path / 'other.db'}"})
    _added, problems = other.import_opml(exported)
    assert problems == []
    assert [
        (c.name, c.homepage, c.all_posts, [f.url for f in c.feeds]) for c in other.contributors()
    ] == [
        ("Ann", site.url("/home-a/"), False, [a]),
        ("Bob & Co", b, True, [b]),
    ]


def test_outputs_are_replaced_whole(make_agg, site):
    agg = make_agg()
    paths = agg.publish()
    assert [p.name for p in paths] == [
        "feed.atom",
        "rss.xml",
        "feed.json",
        "index.html",
        "follow.html",
        "contributors.opml",
    ]
    assert not list(agg.settings.output_dir.glob(".*.tmp"))


@pytest.mark.skipif(not CORPUS_FILES, reason="shared/corpus/real-feeds is not present")
def test_every_corpus_feed_polls_without_a_crash_and_keeps_titles_and_links(make_agg, site):
    agg = make_agg(publish={"max_entries": 5000})
    expected_links: dict[str, set[str]] = {}
    for index, path in enumerate(CORPUS_FILES):
        kind = "application/feed+json" if path.suffix == ".json" else "application/xml"
        url = serve_feed(site, f"/corpus/{index}", path.read_bytes(), content_type=kind)
        agg.add_contributor(path.stem, url, feed=url, all_posts=True)
        if path.suffix == ".xml":
            source = feedparser.parse(path.read_bytes(), response_headers={"content-location": url})
            # FeedBurner hides the post's own link in feedburner:origLink; we publish that one
            expected_links[path.stem] = {
                e.get("feedburner_origlink") or e.get("link") for e in source.entries
            }
    summary = agg.update_feeds()
    assert summary.failed == 0, [r.error for r in summary.results if r.error]
    assert summary.new > 500
    entries = published(agg)
    assert_valid_atom(agg.settings.output_dir / "feed.atom")
    by_author: dict[str, list] = {}
    for entry in entries:
        by_author.setdefault(entry.author, []).append(entry)
    for path in CORPUS_FILES:
        got = by_author.get(path.stem, [])
        assert got, f"{path.name}: no entries published"
        assert all(e.title.strip() for e in got), path.name
        if path.stem in expected_links:
            links = {e.get("link") for e in got}
            assert links <= expected_links[path.stem] | {None}, path.name


def test_corpus_titles_survive_exactly(make_agg, site):
    """Non-ASCII labels and titles (Swedish Blogger) and a windows-1251 feed keep their text."""
    agg = make_agg()
    for name in ("blogger-atom-labels-nonascii.xml", "odd-windows-1251.xml"):
        path = CORPUS / name
        if not path.exists():
            pytest.skip("corpus not present")
        url = serve_feed(site, "/" + name, path.read_bytes())
        agg.add_contributor(name, url, feed=url, all_posts=True)
        source = feedparser.parse(path.read_bytes())
        agg.update_feeds()
        got = {e.title for e in published(agg) if e.author == name}
        assert got == {e.title for e in source.entries}


def test_a_websub_hub_is_named_in_the_feeds_and_pinged_when_they_change(make_agg, site, clock):
    import json

    from aggregator.loopback import Response

    site.routes["/hub"] = Response(b"", status=204, content_type="text/plain")
    agg = make_agg(publish={"hub": site.url("/hub")})
    posts = [item("First", guid="1", link="http://b.example/1", categories=("Co-production Week",))]
    url = serve_feed(site, "/b", rss(*posts))
    agg.add_contributor("Ann", url, feed=url)
    agg.update_feeds()
    agg.publish()
    out, site_url = agg.settings.output_dir, agg.settings.event.site_url
    atom_links = {
        (link.rel, link.href) for link in feedparser.parse(str(out / "feed.atom")).feed.links
    }
    assert ("hub", site.url("/hub")) in atom_links and (
        "self",
        site_url + "feed.atom",
    ) in atom_links
    document = json.loads((out / "feed.json").read_text())
    assert document["hubs"] == [{"type": "WebSub", "url": site.url("/hub")}]
    pings = [r for r in site.hits("/hub") if r.method == "POST"]
    assert len(pings) == 1
    body = urllib.parse.parse_qs(pings[0].body.decode())
    assert body["hub.mode"] == ["publish"]
    assert site_url + "feed.atom" in body["hub.url"] and site_url + "feed.json" in body["hub.url"]
    agg.publish()  # nothing changed: no ping, and the feeds keep their validators
    assert len([r for r in site.hits("/hub") if r.method == "POST"]) == 1
    posts.append(
        item("Second", guid="2", link="http://b.example/2", categories=("Co-production Week",))
    )
    serve_feed(site, "/b", rss(*posts))
    clock.advance(minutes=1)
    agg.update_feeds(include_not_due=True)
    agg.publish()
    assert len([r for r in site.hits("/hub") if r.method == "POST"]) == 2
