"""Start-up benchmark: how long a command takes before it has done anything.

    python benchmarks/startup.py [--contributors 500] [--runs 15]

Times whole processes, each run in turn in one loop so the machine's noise falls on
all of them alike: `python -c pass`, `python -c "import sqlalchemy, typer"` (the
floor: what any command of a SQLAlchemy + Typer program pays), and `aggregator status`
and `aggregator poll` with the given number of contributors in `event.toml`, every
feed polled a moment ago (so `poll` has nothing due). Prints the median of each and
its ratio to the floor. No network: the feeds are never fetched.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

CONFIG = """
[event]
name = "Start-up Week"
site_url = "https://example.org/"
timezone = "Europe/London"
tags = ["Start-up Week"]

[database]
url = "sqlite:///{folder}/data/aggregator.db"

[publish]
output_dir = "{folder}/out"
"""


def write_config(folder: Path, contributors: int) -> Path:
    parts = [CONFIG.format(folder=folder)]
    for n in range(contributors):
        parts.append(
            f'[[contributors]]\nname = "Contributor {n}"\nurl = "https://blog{n}.example.org/"\n'
            f'feed = "https://blog{n}.example.org/feed.xml"\n'
        )
    path = folder / "event.toml"
    path.write_text("\n".join(parts))
    return path


def command() -> list[str]:
    script = Path(sys.executable).with_name("aggregator")
    return [str(script)] if script.exists() else [sys.executable, "-m", "aggregator"]


def mark_polled(folder: Path) -> None:
    """As if every feed was polled a moment ago and answered 304."""
    engine = create_engine(f"sqlite:///{folder}/data/aggregator.db")
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE feed SET last_result = 'not_modified', "
                "last_fetched_at = '2026-01-01 00:00:00.000000', "
                "next_due_at = '2999-01-01 00:00:00.000000'"
            )
        )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contributors", type=int, default=500)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="startup-"))
    try:
        config = write_config(folder, args.contributors)
        agg = [*command(), "--config", str(config)]
        subprocess.run([*agg, "init"], check=True, capture_output=True)
        mark_polled(folder)
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "import sqlalchemy, typer": [sys.executable, "-c", "import sqlalchemy, typer"],
            "aggregator status": [*agg, "status"],
            "aggregator poll (nothing due)": [*agg, "poll"],
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                start = time.perf_counter()
                done = subprocess.run(argv, capture_output=True, text=True)
                times[name].append(time.perf_counter() - start)
                if done.returncode != 0:
                    sys.exit(f"{name} failed: {done.stderr.strip()}")
        floor = statistics.median(times["import sqlalchemy, typer"])
        print(f"{args.contributors} contributors, median of {args.runs} runs each")
        print(f"{'command':32} {'median':>8} {'× floor':>8}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name:32} {median * 1000:6.0f} ms {median / floor:7.2f}×")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
