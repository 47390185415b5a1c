"""Several workers on one PostgreSQL: how a round of polling scales with workers.

    python benchmarks/workers.py [--feeds 5000] [--latency-ms 200] [--hosts 250]
        [--workers 1,2,4] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Serves N feeds on loopback from `feedserver.py`, spread over `--hosts` loopback
addresses (127.0.0.1 to .N: the real web has many hosts, and a host's feeds are
polled by one worker at a time), each answer after the latency. It registers them in
a scratch PostgreSQL database (`aggregator_bench`, made and dropped here) and in a
SQLite file, reads every feed once (the first round: every body parsed), then times
full rounds: every feed made due, then 1, 2 and 4 `aggregator poll` processes
started together, until the last one exits. In these rounds the server answers 304
(the feed did not change), the steady state of an event week, so the load is bound by
latency, not by the two cores. Every round checks at the server that each feed was
fetched exactly once. The single-worker round on SQLite runs beside them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import sqlalchemy
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
BENCH_DB = "aggregator_bench"


def start_server(feeds: int, hosts: int, latency_ms: float) -> tuple[subprocess.Popen, int]:
    server = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "feedserver.py"),
            *("--feeds", str(feeds), "--hosts", str(hosts), "--entries", "5"),
            *("--latency-ms", str(latency_ms)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(server.stdout.readline().split()[1])
    return server, port


def fetch_counts(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats?reset") as answer:
        return {p: n for p, n in json.load(answer).items() if p.startswith("/feed/")}


def write_config(folder: Path, url: str, port: int, feeds: int, hosts: int) -> Path:
    lines = [
        '[event]\nname = "Bench Week"\ntags = ["Co-production Week"]\n',
        f'[database]\nurl = "{url}"\n',
        # the defaults, but 20 request starts a second per host (the default is 10):
        # four at once at 200 ms latency start 20 a second
        "[polling]\nallow_private_addresses = true\nconcurrency = 16\n"
        "per_host_concurrency = 4\nper_host_per_second = 20\n",
        f'[publish]\noutput_dir = "{folder / "out"}"\n',
    ]
    for n in range(feeds):
        feed = f"http://127.0.0.{n % hosts + 1}:{port}/feed/{n}"
        lines.append(f'[[contributors]]\nname = "Blog {n}"\nurl = "{feed}"\nfeed = "{feed}"\n')
    path = folder / "event.toml"
    path.write_text("\n".join(lines))
    return path


def scratch_postgres(admin_url: str) -> str:
    """A fresh database for the benchmark on the server `admin_url` names."""
    engine = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"))
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {BENCH_DB}"))
    engine.dispose()
    return make_url(admin_url).set(database=BENCH_DB).render_as_string(hide_password=False)


def drop_postgres(admin_url: str) -> None:
    engine = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"))
    engine.dispose()


def make_all_due(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE feed SET next_due_at = NULL"))
    engine.dispose()


def poll_round(config: Path, workers: int) -> float:
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--config", str(config), "poll"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0 or "0 failed" not in out:
            raise SystemExit(f"a worker failed: {out}{err}")
    return time.perf_counter() - start


def checked(port: int, feeds: int, label: str) -> None:
    counts = fetch_counts(port)
    if len(counts) != feeds or set(counts.values()) != {1}:
        twice = sum(1 for n in counts.values() if n > 1)
        raise SystemExit(f"{label}: {len(counts)} feeds fetched, {twice} more than once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--hosts", type=int, default=250)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument(
        "--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    server, port = start_server(args.feeds, args.hosts, args.latency_ms)
    pg = scratch_postgres(args.postgres)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "pg").mkdir()
            (folder / "lite").mkdir()
            pg_config = write_config(folder / "pg", pg, port, args.feeds, args.hosts)
            lite_url = f"sqlite:///{folder / 'lite' / 'bench.db'}"
            lite_config = write_config(folder / "lite", lite_url, port, args.feeds, args.hosts)

            first = poll_round(pg_config, max(counts))
            checked(port, args.feeds, "first round")
            print(f"first round, PostgreSQL, {max(counts)} workers: {first:.1f} s", flush=True)
            for n in counts:
                make_all_due(pg)
                wall = poll_round(pg_config, n)
                checked(port, args.feeds, f"{n} workers")
                rows.append((f"PostgreSQL, {n} worker(s)", n, wall))
                print(f"  {rows[-1][0]}: {wall:.1f} s", flush=True)
            first_lite = poll_round(lite_config, 1)
            checked(port, args.feeds, "first round, SQLite")
            print(f"first round, SQLite, 1 worker: {first_lite:.1f} s", flush=True)
            make_all_due(lite_url)
            wall = poll_round(lite_config, 1)
            checked(port, args.feeds, "SQLite")
            rows.append(("SQLite, 1 worker", 1, wall))
    finally:
        server.kill()
        drop_postgres(args.postgres)
    one = next(w for label, n, w in rows if n == 1 and label.startswith("PostgreSQL"))
    print(
        f"\n{args.feeds} feeds, {args.hosts} hosts, {args.latency_ms:.0f} ms latency, "
        f"every feed fetched once per round ({dt.date.today()})\n"
    )
    print("| setup | round (s) | feeds/s | vs one PostgreSQL worker |")
    print("|---|---:|---:|---:|")
    for label, _n, wall in rows:
        print(f"| {label} | {wall:.1f} | {args.feeds / wall:.0f} | {one / wall:.2f}× |")


if __name__ == "__main__":
    main()
