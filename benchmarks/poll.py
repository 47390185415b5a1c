"""Polling benchmark: N feeds on loopback, each answer delayed by a fixed latency.

    python benchmarks/poll.py [--feeds 500] [--entries 25] [--latency-ms 50]

Reports wall time and peak memory (RSS high-water mark, from the kernel) of three
polls in one run: the first, a second where every feed answers 304, and a third
after 10% of the feeds gained one entry. Each poll runs in its own process so the
memory figures do not carry over. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

from aggregator.config import settings_from_dict
from aggregator.core import Aggregator
from aggregator.loopback import LoopbackSite, Response


def feed_body(index: int, entries: int) -> bytes:
    items = []
    for n in range(entries):
        tag = (
            "<category>Co-production Week</category>" if n % 5 == 0 else "<category>misc</category>"
        )
        items.append(
            f"<item><title>Post {n} of blog {index}</title><guid>b{index}-p{n}</guid>"
            f"<link>http://blog{index}.example/p/{n}</link>"
            f"<pubDate>Mon, 03 Jul 2017 {n % 24:02d}:00:00 +0000</pubDate>{tag}"
            "<description><![CDATA[<p>"
            + ("Words about the week and more. " * 40)
            + f"blog{index}post{n}</p>]]></description></item>"
        )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Blog {index}</title>'
        f"<link>http://blog{index}.example/</link>{''.join(items)}</channel></rss>"
    ).encode()


def settings(workdir: Path) -> dict:
    return {
        "event": {"name": "Bench", "tags": ["Co-production Week"], "timezone": "UTC"},
        "database": {"url": f"sqlite:///{workdir / 'bench.db'}"},
        "polling": {
            "allow_private_addresses": True,
            "concurrency": 50,
            # every feed is on 127.0.0.1 here; real feeds spread over many hosts
            "per_host_concurrency": 50,
            "per_host_per_second": 100000,
            "timeout_seconds": 60,
        },
        "publish": {"output_dir": str(workdir / "out")},
    }


def _poll(workdir: str, clock_minutes: int, queue: multiprocessing.Queue) -> None:
    now = dt.datetime(2017, 7, 5, tzinfo=dt.UTC) + dt.timedelta(minutes=clock_minutes)
    with Aggregator(settings_from_dict(settings(Path(workdir))), clock=lambda: now) as agg:
        start = time.perf_counter()
        summary = agg.update_feeds(include_not_due=True)
        elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((elapsed, peak_kib / 1024, summary.line()))


def run_poll(workdir: Path, clock_minutes: int) -> tuple[float, float, str]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.get_context("fork").Process(
        target=_poll, args=(str(workdir), clock_minutes, queue)
    )
    proc.start()
    result = queue.get(timeout=3600)
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--entries", type=int, default=25)
    parser.add_argument("--latency-ms", type=float, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, LoopbackSite() as site:
        site.server.request_queue_size = 1024
        workdir = Path(tmp)
        delay = args.latency_ms / 1000
        for i in range(args.feeds):
            site.routes[f"/feed/{i}"] = Response(feed_body(i, args.entries), delay=delay)
        with Aggregator(settings_from_dict(settings(workdir))) as agg:
            for i in range(args.feeds):
                feed_url = site.url(f"/feed/{i}")
                contributor = agg.storage.feeds.add_contributor(
                    f"Blog {i}", feed_url, False, dt.datetime.now(dt.UTC)
                )
                agg.storage.feeds.add_feed(
                    contributor, feed_url, "main", "", dt.datetime.now(dt.UTC)
                )
        results = {}
        results["first poll"] = run_poll(workdir, 0)
        results["all 304"] = run_poll(workdir, 60)
        for i in range(0, args.feeds, 10):
            body = feed_body(i, args.entries).replace(
                b"<item>",
                b"<item><title>New</title><guid>new-%d</guid>"
                b"<category>Co-production Week</category><description>x</description></item><item>"
                % i,
                1,
            )
            site.routes[f"/feed/{i}"] = Response(body, delay=delay)
        results["10% changed"] = run_poll(workdir, 120)

    print(
        f"{args.feeds} feeds × {args.entries} entries, {args.latency_ms:g} ms latency, "
        f"Python {sys.version.split()[0]}"
    )
    print(f"{'poll':<14}{'wall s':>9}{'peak MiB':>10}  summary")
    for name, (elapsed, peak, line) in results.items():
        print(f"{name:<14}{elapsed:>9.2f}{peak:>10.0f}  {line}")
    first, second = results["first poll"][0], results["all 304"][0]
    print(f"first / all-304 speed-up: {first / second:.1f}×")
    print(
        json.dumps(
            {k: {"seconds": round(v[0], 3), "peak_mib": round(v[1])} for k, v in results.items()}
        )
    )


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
