"""Load benchmark: `aggregator serve --with-worker` under wrk, beside nginx serving the
same published folder as static files, in one run.

    python benchmarks/serve.py [--feeds 500] [--seconds 30] [--connections 200] [--processes 2]
                               [--no-access-log]

Needs Debian's `wrk` and `nginx` (`apt-get install wrk nginx-light`). Everything stays on
127.0.0.1. The feeds come from `feedserver.py` with a 1 s latency, so the worker's first
poll of all of them (started with the server) is still running while `/` is measured:
that is the figure that matters, pages answered while the process polls. Then
`/feed.atom` is measured unconditionally and with `If-None-Match` (a feed reader's
conditional GET), from the app and from nginx, each with `--processes` web processes (the
app's `serve --processes`, nginx's `worker_processes`). Reported per target: requests a
second, median and 99th-percentile latency, and errors (socket errors and 5xx/4xx answers).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from poll import FeedServerProcess

NGINX_CONF = """
daemon off;
worker_processes {processes};
pid {prefix}/nginx.pid;
error_log {prefix}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ application/atom+xml atom; text/html html; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                answer.read()
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer")


def etag_of(url: str) -> str:
    with urllib.request.urlopen(url) as answer:
        answer.read()
        return str(answer.headers["ETag"])


def wrk(url: str, seconds: int, connections: int, etag: str | None = None) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if etag:
        command[1:1] = ["-H", f"If-None-Match: {etag}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms("50%"),
        "p99": ms("99%"),
        "errors": errors + (int(bad.group(1)) if bad else 0),
    }


def write_config(folder: Path, base: str, feeds: int) -> Path:
    lines = [
        '[event]\nname = "Load Week"\ntags = ["Co-production Week"]\n',
        f'[database]\nurl = "sqlite:///{folder}/data/aggregator.db"\n',
        "[polling]\nallow_private_addresses = true\nper_host_concurrency = 50\n"
        "per_host_per_second = 1000\nconcurrency = 16\ntimeout_seconds = 20\n",
        f'[publish]\noutput_dir = "{folder}/out"\n',
    ]
    for n in range(feeds):
        url = f"{base}/feed/{n}"
        lines.append(f'[[contributors]]\nname = "Blog {n}"\nurl = "{url}"\nfeed = "{url}"\n')
    path = folder / "event.toml"
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument(
        "--processes", type=int, default=2, help="web processes of each server (default 2)"
    )
    parser.add_argument(
        "--no-access-log", action="store_true", help="serve without a log line per request"
    )
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool}: apt-get install wrk nginx-light")
    aggregator = [str(Path(sys.executable).with_name("aggregator"))]
    folder = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    folder.chmod(0o755)  # nginx's workers run as another user and must reach out/
    processes: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, float]] = {}
    try:
        with FeedServerProcess(args.feeds, 25, 1000) as feeds:
            config = write_config(folder, feeds.base, args.feeds)
            run = [*aggregator, "--config", str(config)]
            subprocess.run([*run, "init"], check=True, capture_output=True)
            subprocess.run([*run, "publish"], check=True, capture_output=True)
            port = free_port()
            log = (folder / "serve.log").open("wb")
            logging = ["--no-access-log"] if args.no_access_log else []
            serve = [*run, "serve", "--port", str(port), "--with-worker", *logging]
            serve += ["--processes", str(args.processes)]
            processes.append(subprocess.Popen(serve, stdout=log, stderr=log))
            app = f"http://127.0.0.1:{port}"
            wait_for(app + "/")
            started = time.monotonic()
            results["app /, during the poll"] = wrk(app + "/", args.seconds, args.connections)
            poll_line = ""
            while time.monotonic() - started < 300 and "poll:" not in poll_line:
                poll_line = (folder / "serve.log").read_text(errors="replace")
                time.sleep(0.5)
            polled = re.search(r"poll: (feeds: .*)", poll_line)
            poll_seconds = time.monotonic() - started
            app_etag = etag_of(app + "/feed.atom")
            results["app /feed.atom"] = wrk(app + "/feed.atom", args.seconds, args.connections)
            results["app /feed.atom, If-None-Match"] = wrk(
                app + "/feed.atom", args.seconds, args.connections, app_etag
            )
            nginx_port = free_port()
            (folder / "nginx.conf").write_text(
                NGINX_CONF.format(
                    prefix=folder, port=nginx_port, root=folder / "out", processes=args.processes
                )
            )
            processes.append(
                subprocess.Popen(
                    ["nginx", "-c", str(folder / "nginx.conf"), "-p", str(folder)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            static = f"http://127.0.0.1:{nginx_port}"
            wait_for(static + "/feed.atom")
            static_etag = etag_of(static + "/feed.atom")
            results["nginx /feed.atom"] = wrk(static + "/feed.atom", args.seconds, args.connections)
            results["nginx /feed.atom, If-None-Match"] = wrk(
                static + "/feed.atom", args.seconds, args.connections, static_etag
            )
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"{args.feeds} feeds at 1 s latency, {args.connections} connections, {args.seconds} s each,"
        f" {args.processes} web processes each"
    )
    summary = polled.group(1) if polled else "?"
    print(f"the worker's first poll: {summary} (ended {poll_seconds:.0f} s in)")
    print(f"{'target':34} {'req/s':>8} {'p50':>9} {'p99':>9} {'errors':>7}")
    for name, r in results.items():
        print(f"{name:34} {r['rps']:8.0f} {r['p50']:7.1f}ms {r['p99']:7.1f}ms {r['errors']:7.0f}")
    ratio = (
        results["app /feed.atom, If-None-Match"]["rps"]
        / results["nginx /feed.atom, If-None-Match"]["rps"]
    )
    print(f"app / nginx, conditional /feed.atom: {ratio:.2f}")


if __name__ == "__main__":
    main()
