"""The fast parsing path publishes exactly what the feedparser path publishes."""

from __future__ import annotations

import feedparser
import pytest

import aggregator.pipeline.parse

from .conftest import CORPUS, serve_feed

CORPUS_FILES = sorted(CORPUS.glob("*.xml"))


def publish_corpus(agg, site):
    # the same addresses for both runs: relative links resolve to the same URLs
    for path in CORPUS_FILES:
        url = serve_feed(site, f"/corpus/{path.name}", path.read_bytes())
        agg.add_contributor(path.stem, url, feed=url, all_posts=True)
    summary = agg.update_feeds()
    agg.publish()
    feed = feedparser.parse(str(agg.settings.output_dir / "feed.atom"))
    return summary, [
        (
            e.author,
            e.id,
            e.title,
            e.get("link"),
            e.content[0].value,
            [t.term for t in e.get("tags", [])],
            e.get("published"),
            e.get("updated"),
        )
        for e in feed.entries
    ]


@pytest.mark.skipif(not CORPUS_FILES, reason="shared/corpus/real-feeds is not present")
def test_corpus_publishes_the_same_through_both_parsing_paths(
    make_agg, site, tmp_path, monkeypatch
):
    used = []
    real_fast = aggregator.pipeline.parse.fast_parse

    def counting(content, url):
        result = real_fast(content, url)
        used.append(result is not None)
        return result

    monkeypatch.setattr(aggregator.pipeline.parse, "fast_parse", counting)
    fast = make_agg(publish={"max_entries": 5000, "output_dir": str(tmp_path / "fast")})
    fast_summary, fast_entries = publish_corpus(fast, site)
    assert sum(used) >= 10  # the fast path really took part of the corpus

    monkeypatch.setattr(aggregator.pipeline.parse, "fast_parse", lambda content, url: None)
    slow = make_agg(
        publish={"max_entries": 5000, "output_dir": str(tmp_path / "slow")},
        database={"url": f"sqlite:///{tmp_path / 'slow.db'}"},
    )
    slow_summary, slow_entries = publish_corpus(slow, site)
    assert (fast_summary.new, fast_summary.duplicates) == (
        slow_summary.new,
        slow_summary.duplicates,
    )
    for a, b in zip(sorted(fast_entries), sorted(slow_entries), strict=True):
        assert a == b
