"""Generated input thrown at parsing, matching, sanitising and publishing: no exception,
and the Atom written is always valid. Plus the real corpus, deliberately broken."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from html.parser import HTMLParser

import feedparser
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from aggregator.config import settings_from_dict
from aggregator.errors import FeedError
from aggregator.outputs.publish import render_atom
from aggregator.pipeline.decide import decide_posts
from aggregator.pipeline.match import EventRules
from aggregator.pipeline.parse import parse_feed
from aggregator.pipeline.sanitize import sanitize_html
from aggregator.storage.posts import PostView
from aggregator.text import html_to_text

from .conftest import CORPUS, published, serve_feed
from .test_publish_and_corpus import assert_valid_atom

RULES = EventRules.build(
    ["Co-production Week"], ["co-production week"], None, None, zoneinfo.ZoneInfo("Europe/London")
)
NOW = dt.datetime(2017, 7, 5, tzinfo=dt.UTC)
SETTINGS = settings_from_dict({"event": {"name": "Fuzz", "site_url": "https://e.example/"}})

nasty_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80
) | st.sampled_from(
    [
        "<script>alert(1)</script>",
        "]]>",
        "&amp;",
        "&#0;",
        "\x00\x0b",
        "#CoProductionWeek",
        "Co-production\nWeek",
        "<p onclick=x>",
        "javascript:alert(1)",
        "\r\nBcc: x@y",
        "\ufffe",
        '<a href="javascript:x">',
        "<img src=x onerror=y>",
        "<![CDATA[",
        "&lol;",
        "\u202e",
    ]
)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def feeds(draw) -> bytes:
    items = []
    for n in range(draw(st.integers(0, 4))):
        title = escape(draw(nasty_text))
        content = draw(nasty_text)
        cat = escape(draw(nasty_text | st.just("Co-production Week")))
        link = escape(
            draw(
                st.sampled_from(
                    [
                        "https://x.example/p",
                        "/rel",
                        "javascript:x",
                        "",
                        "http://[::1",
                        "https://x.example/a?utm_source=1",
                    ]
                )
            )
        )
        date = escape(
            draw(
                st.sampled_from(
                    [
                        "Wed, 05 Jul 2017 08:00:00 +0000",
                        "garbage",
                        "",
                        "Sat, 01 Jan 2050 00:00:00 +0000",
                        "9999",
                    ]
                )
            )
        )
        items.append(
            f"<item><title>{title}</title><link>{link}</link><guid>{n}{title}</guid>"
            f"<pubDate>{date}</pubDate><category>{cat}</category>"
            f"<description>{escape(content)}</description></item>"
        )
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>'
        + escape(draw(nasty_text))
        + "</title>"
        + "".join(items)
        + "</channel></rss>"
    )
    raw = body.encode("utf-8", "surrogatepass")
    cut = draw(st.integers(0, len(raw)))
    return draw(st.sampled_from([raw, raw[:cut], raw + draw(st.binary(max_size=40))]))


def views(intents) -> list[PostView]:
    return [
        PostView(
            id=n,
            entry_id=i.entry_key,
            title=i.title,
            link=i.link,
            contributor="Fuzzer",
            author=i.author,
            content=i.content_html,
            text=i.text,
            categories=i.categories,
            published=i.published,
            updated=i.updated,
            sort_date=NOW,
            first_seen=NOW,
            feed_url="https://x.example/feed",
            feed_title="F",
            digest_date=None,
        )
        for n, i in enumerate(intents)
    ]


def check_pipeline(body: bytes) -> None:
    try:
        parsed = parse_feed(body, "https://x.example/feed", "application/xml")
    except FeedError:
        return  # a clear refusal is a fine outcome
    intents = decide_posts(parsed, RULES, all_posts=True, now=NOW)
    atom = render_atom(SETTINGS, views(intents), NOW)
    etree.fromstring(atom)  # well-formed XML, whatever came in
    assert feedparser.parse(atom).bozo == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feeds())
def test_generated_feeds_never_crash_and_publish_valid_xml(body):
    check_pipeline(body)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_refused_or_read(body):
    check_pipeline(body)


@settings(max_examples=200, deadline=None)
@given(nasty_text, nasty_text)
@example("", "'>")  # found by hypothesis: the handler's name is left as text, which is fine
def test_sanitised_html_never_keeps_scripts_or_handlers(a, b):
    html = f"<div>{a}<script>{b}</script><a href='javascript:{b}' onclick='{a}'>{b}</a></div>"
    clean = sanitize_html(html, "https://x.example/")
    # what a browser would build from it: no script element, no handler, no javascript: URL
    # (the words may stay as harmless text, e.g. when `b` closes the attribute early)
    tags = _Tags()
    tags.feed(clean)
    assert "script" not in {name for name, _ in tags.seen}
    for _name, attrs in tags.seen:
        for attr, value in attrs:
            assert not attr.startswith("on"), clean
            assert not (value or "").strip().lower().startswith("javascript:"), clean
    html_to_text(clean)


class _Tags(HTMLParser):
    """Every start tag with its attributes, as an HTML5 tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))


CORPUS_FILES = sorted(p for p in CORPUS.glob("*.xml"))


def broken_variants(data: bytes) -> dict[str, bytes]:
    return {
        "truncated": data[: len(data) // 2],
        "garbage": data + b"\x00\xff<not>xml&&&" * 10,
        "utf16": data.decode("latin-1").encode("utf-16"),
        "latin1-as-utf8": data.decode("utf-8", "replace").encode("latin-1", "replace"),
    }


@pytest.mark.skipif(not CORPUS_FILES, reason="shared/corpus/real-feeds is not present")
def test_broken_corpus_variants_leave_a_valid_feed(make_agg, site):
    agg = make_agg(publish={"max_entries": 5000})
    for path in CORPUS_FILES:
        for kind, body in broken_variants(path.read_bytes()).items():
            url = serve_feed(site, f"/{kind}/{path.name}", body)
            contributor = agg.storage.feeds.add_contributor(f"{kind} {path.stem}", url, True, NOW)
            agg.storage.feeds.add_feed(contributor, url, "main", "", NOW)
    summary = agg.update_feeds()
    assert summary.fetched + summary.failed == len(CORPUS_FILES) * 4
    assert summary.new > 0
    published(agg)
    assert_valid_atom(agg.settings.output_dir / "feed.atom")
    for result in summary.results:
        if result.error:
            assert result.error.startswith("not a feed"), result.error
