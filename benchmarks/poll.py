"""Polling benchmark: N feeds on loopback, each answer delayed by a fixed latency.

    python benchmarks/poll.py [--feeds 500] [--entries 25] [--latency-ms 50]
                              [--reader-python PATH]

Reports wall time and peak memory (RSS high-water mark, from the kernel) of three
polls in one run: the first, a second where every feed answers 304, and a third
after 10% of the feeds gained one entry. Each poll runs in its own process so the
memory figures do not carry over. In the same run it measures the floor (bare
concurrent GETs with httpx, 50 at once) and, with --reader-python (a Python >= 3.12
that has `pip install reader==3.27`), lemon24/reader's `update_feeds(workers=20)` on
the same feeds. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

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


def _guarded(target, args, queue) -> None:
    try:
        target(*args, queue)
    except BaseException as e:  # the parent must hear of it, not wait forever
        queue.put(e)


def in_child(target, *args):
    """Run target(*args, queue) in a forked process, apart from the server's threads."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.get_context("fork").Process(target=_guarded, args=(target, args, queue))
    proc.start()
    while True:
        try:
            result = queue.get(timeout=1)
            break
        except Exception:
            if not proc.is_alive():
                raise RuntimeError(f"the benchmark process died (exit {proc.exitcode})") from None
    proc.join()
    if isinstance(result, BaseException):
        raise result
    return result


def run_poll(workdir: Path, clock_minutes: int) -> tuple[float, float, str]:
    return in_child(_poll, str(workdir), clock_minutes)


READER_SCRIPT = r"""
import json, resource, sys, time
from reader import make_reader
db, urls_file = sys.argv[1], sys.argv[2]
reader = make_reader(db)
if not list(reader.get_feeds(limit=1)):
    for url in open(urls_file).read().split():
        reader.add_feed(url)
start = time.perf_counter()
reader.update_feeds(workers=20, scheduled=False)
elapsed = time.perf_counter() - start
print(json.dumps([elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))
"""


def run_reader(python: str, workdir: Path, urls_file: Path) -> tuple[float, float, str]:
    out = subprocess.run(
        [python, "-c", READER_SCRIPT, str(workdir / "reader.sqlite"), str(urls_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    elapsed, peak = json.loads(out.strip().splitlines()[-1])
    return elapsed, peak, "lemon24/reader 3.27, update_feeds(workers=20, scheduled=False)"


async def _bare_gets(urls: list[str], at_once: int) -> None:
    slots = asyncio.Semaphore(at_once)
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=at_once), timeout=60
    ) as client:

        async def one(url: str) -> None:
            async with slots:
                await client.get(url)

        await asyncio.gather(*(one(u) for u in urls))


def _floor(urls: list[str], queue: multiprocessing.Queue) -> None:
    start = time.perf_counter()
    asyncio.run(_bare_gets(urls, 50))
    elapsed = time.perf_counter() - start
    queue.put(
        (
            elapsed,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "bare GETs, httpx, 50 at once, no parsing or storing",
        )
    )


def run_floor(urls: list[str]) -> tuple[float, float, str]:
    return in_child(_floor, urls)


def changed_body(index: int, entries: int) -> bytes:
    return feed_body(index, entries).replace(
        b"<item>",
        b"<item><title>New</title><guid>new-%d</guid>"
        b"<category>Co-production Week</category><description>x</description></item><item>" % index,
        1,
    )


POLLS = ["first poll", "all 304", "10% changed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--entries", type=int, default=25)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--reader-python", help="a Python >= 3.12 with reader 3.27 installed")
    args = parser.parse_args()

    results: dict[str, dict[str, tuple[float, float, str]]] = {
        "floor": {},
        "ours": {},
        "reader": {},
    }
    with tempfile.TemporaryDirectory() as tmp, LoopbackSite() as site:
        site.server.request_queue_size = 1024
        workdir = Path(tmp)
        delay = args.latency_ms / 1000
        for i in range(args.feeds):
            site.routes[f"/feed/{i}"] = Response(feed_body(i, args.entries), delay=delay)
        urls = [site.url(f"/feed/{i}") for i in range(args.feeds)]
        urls_file = workdir / "urls.txt"
        urls_file.write_text("\n".join(urls))
        with Aggregator(settings_from_dict(settings(workdir))) as agg:
            for url in urls:
                now = dt.datetime.now(dt.UTC)
                contributor = agg.storage.feeds.add_contributor(url, url, False, now)
                agg.storage.feeds.add_feed(contributor, url, "main", "", now)
        for step, name in enumerate(POLLS):
            if step == 2:
                for i in range(0, args.feeds, 10):
                    site.routes[f"/feed/{i}"] = Response(changed_body(i, args.entries), delay=delay)
            results["floor"][name] = run_floor(urls)
            results["ours"][name] = run_poll(workdir, 60 * step)
            if args.reader_python:
                results["reader"][name] = run_reader(args.reader_python, workdir, urls_file)

    print(
        f"{args.feeds} feeds × {args.entries} entries, {args.latency_ms:g} ms latency, "
        f"Python {sys.version.split()[0]}"
    )
    print(f"{'poll':<13}{'system':<8}{'wall s':>8}{'peak MiB':>10}  notes")
    for name in POLLS:
        for system, runs in results.items():
            if name in runs:
                elapsed, peak, line = runs[name]
                print(f"{name:<13}{system:<8}{elapsed:>8.2f}{peak:>10.0f}  {line}")
    ours = results["ours"]
    print(f"ours, first poll / all-304 poll: {ours['first poll'][0] / ours['all 304'][0]:.1f}×")
    for name in POLLS:
        ratios = [f"{ours[name][0] / results['floor'][name][0]:.1f}× the floor"]
        if name in results["reader"]:
            ratios.append(f"{results['reader'][name][0] / ours[name][0]:.1f}× faster than reader")
        print(f"ours, {name}: " + ", ".join(ratios))
    print(
        json.dumps(
            {
                system: {k: [round(v[0], 3), round(v[1])] for k, v in runs.items()}
                for system, runs in results.items()
            }
        )
    )


if __name__ == "__main__":
    main()
