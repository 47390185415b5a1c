"""Polling benchmark: N feeds on loopback, each answer delayed by a fixed latency.

    python benchmarks/poll.py [--feeds 500] [--entries 25] [--latency-ms 50]
                              [--reader-python PATH]

Reports wall time and peak memory (RSS high-water mark, from the kernel) of three
polls in one run: the first, a second where every feed answers 304, and a third
after 10% of the feeds gained one entry. Each poll runs in its own process so the
memory figures do not carry over. In the same run it measures the floor (bare
concurrent GETs with aiohttp, 50 at once, remembering ETags), with --httpx the same
with httpx (the client this project used before), and with --reader-python (a
Python >= 3.12 that has `pip install reader==3.27`) lemon24/reader's
`update_feeds(workers=20)` on the same feeds. The feeds come from
benchmarks/feedserver.py in a process of its own. Everything stays on 127.0.0.1.
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
import urllib.request
from pathlib import Path

FEED_SERVER = Path(__file__).with_name("feedserver.py")


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


def open_aggregator(workdir: Path, **kwargs):
    # imported here, as the `aggregator` command does: the worker processes that parse
    # feeds import this main module, and should not load the whole program for it
    from aggregator.config import settings_from_dict
    from aggregator.core import Aggregator

    return Aggregator(settings_from_dict(settings(workdir)), **kwargs)


def _poll(workdir: str, clock_minutes: int, queue: multiprocessing.Queue) -> None:
    now = dt.datetime(2017, 7, 5, tzinfo=dt.UTC) + dt.timedelta(minutes=clock_minutes)
    with open_aggregator(Path(workdir), clock=lambda: now) as agg:
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


#: what the floor remembers between polls, as a feed reader would: each URL's ETag
FLOOR_ETAGS: dict[str, str] = {}


async def _bare_gets_aiohttp(urls: list[str], at_once: int, etags: dict[str, str]) -> None:
    import aiohttp  # a dependency of the project

    slots = asyncio.Semaphore(at_once)
    connector = aiohttp.TCPConnector(limit=at_once)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> None:
            async with slots:
                headers = {"If-None-Match": etags[url]} if url in etags else {}
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    etags[url] = response.headers.get("etag", "")

        await asyncio.gather(*(one(u) for u in urls))


async def _bare_gets_httpx(urls: list[str], at_once: int, etags: dict[str, str]) -> None:
    import httpx  # installed with the test extra

    slots = asyncio.Semaphore(at_once)
    limits = httpx.Limits(max_connections=at_once)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(url: str) -> None:
            async with slots:
                headers = {"If-None-Match": etags[url]} if url in etags else {}
                response = await client.get(url, headers=headers)
                etags[url] = response.headers.get("etag", "")

        await asyncio.gather(*(one(u) for u in urls))


def _floor(urls: list[str], client: str, etags: dict, queue: multiprocessing.Queue) -> None:
    gets = _bare_gets_aiohttp if client == "aiohttp" else _bare_gets_httpx
    start = time.perf_counter()
    asyncio.run(gets(urls, 50, etags))
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((elapsed, peak, f"bare GETs, {client}, 50 at once, no parsing or storing", etags))


def run_floor(urls: list[str], client: str) -> tuple[float, float, str]:
    *result, etags = in_child(_floor, urls, client, FLOOR_ETAGS.setdefault(client, {}))
    FLOOR_ETAGS[client] = etags
    return tuple(result)


class FeedServerProcess:
    """benchmarks/feedserver.py in a process of its own, apart from the polls' CPU."""

    def __init__(self, feeds: int, entries: int, latency_ms: float):
        command = [sys.executable, str(FEED_SERVER), "--feeds", str(feeds)]
        command += ["--entries", str(entries), "--latency-ms", str(latency_ms)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "port":
            self.process.kill()
            raise RuntimeError("the feed server did not start")
        self.base = f"http://127.0.0.1:{line[1]}"

    def change(self) -> None:
        with urllib.request.urlopen(self.base + "/_change") as answer:
            answer.read()

    def __enter__(self) -> FeedServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait()


POLLS = ["first poll", "all 304", "10% changed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--entries", type=int, default=25)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--reader-python", help="a Python >= 3.12 with reader 3.27 installed")
    parser.add_argument("--httpx", action="store_true", help="also time bare GETs with httpx")
    args = parser.parse_args()

    results: dict[str, dict[str, tuple[float, float, str]]] = {
        "floor": {},
        "httpx": {},
        "ours": {},
        "reader": {},
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        FeedServerProcess(args.feeds, args.entries, args.latency_ms) as server,
    ):
        workdir = Path(tmp)
        urls = [f"{server.base}/feed/{i}" for i in range(args.feeds)]
        urls_file = workdir / "urls.txt"
        urls_file.write_text("\n".join(urls))
        with open_aggregator(workdir) as agg:
            for url in urls:
                now = dt.datetime.now(dt.UTC)
                contributor = agg.storage.feeds.add_contributor(url, url, False, now)
                agg.storage.feeds.add_feed(contributor, url, "main", "", now)
        for step, name in enumerate(POLLS):
            if step == 2:
                server.change()
            results["floor"][name] = run_floor(urls, "aiohttp")
            if args.httpx:
                results["httpx"][name] = run_floor(urls, "httpx")
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
