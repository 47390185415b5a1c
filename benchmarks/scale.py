"""Scale benchmark: publish, digest and status over a large database (no network).

    python benchmarks/scale.py [--posts 50000] [--digest-posts 500] [--feeds 5000]

Fills a SQLite database with N stored posts spread over F feeds (through the
storage layer, as polls would), then times: `publish` (feed.atom, index.html, OPML
of max_entries=200 posts), preparing and rendering a digest of the given size
(`digest --preview`), and building the `status` table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import tempfile
import time
from pathlib import Path

from aggregator.config import settings_from_dict
from aggregator.core import Aggregator
from aggregator.pipeline.dedupe import content_hash
from aggregator.records import PostIntent


def intent(n: int) -> PostIntent:
    text = f"Post number {n} about co-production. " * 12
    html = f"<p>{text}</p>"
    return PostIntent(
        entry_key=f"id:post-{n}",
        canonical_link=f"https://blog.example/p/{n}",
        link_key=f"blog.example/p/{n}",
        fingerprint=f"{n:064x}",
        title=f"Post {n}",
        link=f"https://blog.example/p/{n}",
        author="",
        content_html=html,
        text=text,
        categories=("Co-production Week",),
        published=dt.datetime(2017, 7, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n),
        updated=None,
        content_hash=content_hash(f"Post {n}", html, (), None),
    )


def timed(label: str, func) -> float:
    start = time.perf_counter()
    func()
    elapsed = time.perf_counter() - start
    print(f"{label:<46}{elapsed:>8.3f} s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=50_000)
    parser.add_argument("--digest-posts", type=int, default=500)
    parser.add_argument("--feeds", type=int, default=5_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_from_dict(
            {
                "event": {"name": "Scale", "tags": ["Co-production Week"]},
                "database": {"url": f"sqlite:///{Path(tmp) / 'scale.db'}"},
                "publish": {"output_dir": str(Path(tmp) / "out")},
            }
        )
        start = dt.datetime(2017, 7, 1, tzinfo=dt.UTC)
        with Aggregator(settings, clock=lambda: start) as agg:
            feeds = agg.storage.feeds
            ids = []
            for f in range(args.feeds):
                contributor = feeds.add_contributor(
                    f"Blog {f}", f"https://b{f}.example/", False, start
                )
                ids.append(
                    feeds.add_feed(contributor, f"https://b{f}.example/feed", "main", "", start)
                )
            per_feed = max(1, args.posts // len(ids))
            for index, feed_id in enumerate(ids):
                first = index * per_feed
                batch = [intent(n) for n in range(first, min(first + per_feed, args.posts))]
                if batch:
                    contributor_id = index + 1
                    agg.storage.posts.store(feed_id, contributor_id, batch, start)
            # all but the newest `digest_posts` went out in an earlier digest
            agg.storage.posts.make_digest(
                dt.date(2017, 6, 30), start + dt.timedelta(seconds=1), allow_empty=True
            )
            later = start + dt.timedelta(hours=1)
            agg.storage.posts.store(
                ids[0], 1, [intent(args.posts + n) for n in range(args.digest_posts)], later
            )
            print(
                f"{agg.storage.posts.count():,} posts in {len(ids):,} feeds "
                f"({args.posts:,} already sent in an earlier digest)"
            )
            agg.clock = lambda: later + dt.timedelta(minutes=5)
            timed("publish (200 entries)", agg.publish)
            timed(
                f"digest preview ({args.digest_posts} posts)",
                lambda: agg.preview_digest_html(dt.date(2017, 7, 1)),
            )

            def status() -> None:
                from aggregator.cli_tables import STATUS_COLUMNS, plain_table, status_rows

                io.StringIO().write(plain_table(STATUS_COLUMNS, status_rows(agg.status())))

            timed(f"status ({len(ids):,} feeds, plain text)", status)


if __name__ == "__main__":
    main()
