"""An operator's bad day: a poll or a publish killed with SIGKILL half-way, or the
PostgreSQL server restarted mid-poll, loses nothing. The database stays intact, the
outputs are whole (old or new, never half), and the next run completes."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import feedparser
import pytest

from aggregator.loopback import Response

from .conftest import item, rss

TAG = ("Co-production Week",)
FEEDS = 40


def _config(tmp_path: Path, site_base: str) -> Path:
    lines = [
        '[event]\nname = "Fault Week"\ntags = ["Co-production Week"]\n',
        f'[database]\nurl = "sqlite:///{tmp_path / "data" / "faults.db"}"\n',
        "[polling]\nallow_private_addresses = true\nconcurrency = 4\n"
        "per_host_concurrency = 4\nper_host_per_second = 1000\n",
        f'[publish]\noutput_dir = "{tmp_path / "out"}"\n',
    ]
    for n in range(FEEDS):
        url = f"{site_base}/feed/{n}"
        lines.append(f'[[contributors]]\nname = "Blog {n}"\nurl = "{url}"\nfeed = "{url}"\n')
    path = tmp_path / "event.toml"
    path.write_text("\n".join(lines))
    return path


def _run(config: Path, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def _posts(db: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT title, count(*) FROM post GROUP BY title ORDER BY title"
        ).fetchall()


def test_a_poll_killed_half_way_loses_nothing_and_the_next_completes(tmp_path, site):
    for n in range(FEEDS):
        body = rss(item(f"Post {n}", guid=f"p{n}", categories=TAG))
        site.routes[f"/feed/{n}"] = Response(body, delay=0.15)  # slow: the kill lands mid-poll
    config = _config(tmp_path, site.base.rstrip("/"))
    db = tmp_path / "data" / "faults.db"
    poll = _run(config, "poll")
    deadline = time.monotonic() + 20
    while len(site.requests) < FEEDS // 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    poll.send_signal(signal.SIGKILL)
    poll.wait(10)
    assert len(site.requests) < FEEDS, "the poll ended before it was killed"
    assert _integrity(db) == "ok"
    again = _run(config, "poll", "--all")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "0 failed" in out
    # every post is there, once, whether its feed was stored before the kill or after
    assert _posts(db) == sorted((f"Post {n}", 1) for n in range(FEEDS))


PUBLISH_LOOP = """
import sys
from aggregator.config import load_settings
from aggregator.core import Aggregator
from pathlib import Path
with Aggregator(load_settings(Path(sys.argv[1]))) as agg:
    print("ready", flush=True)
    while True:
        agg.publish()
"""


@pytest.mark.parametrize("kill_after", [0.05, 0.13, 0.31, 0.57])
def test_a_publish_killed_half_way_leaves_whole_files(tmp_path, site, kill_after):
    for n in range(FEEDS):
        posts = [item(f"Post {n}.{k}", guid=f"p{n}-{k}", categories=TAG) for k in range(5)]
        site.routes[f"/feed/{n}"] = Response(rss(*posts))
    config = _config(tmp_path, site.base.rstrip("/"))
    for command in ("poll", "publish"):  # the outputs exist: the kill lands on a rewrite
        done = _run(config, command)
        assert done.wait(120) == 0, done.stderr.read()
    script = tmp_path / "publish_loop.py"
    script.write_text(PUBLISH_LOOP)
    loop = subprocess.Popen(
        [sys.executable, str(script), str(config)], stdout=subprocess.PIPE, text=True
    )
    assert loop.stdout.readline().strip() == "ready"
    time.sleep(kill_after)
    os.kill(loop.pid, signal.SIGKILL)
    loop.wait(10)
    out = tmp_path / "out"
    feed = feedparser.parse(str(out / "feed.atom"))
    assert feed.bozo == 0 and len(feed.entries) == FEEDS * 5
    assert (out / "index.html").read_text().rstrip().endswith("</html>")
    assert (out / "contributors.opml").read_text().rstrip().endswith("</opml>")
    # the next publish completes (a killed one may leave a hidden .tmp file, never a
    # half-written output)
    again = _run(config, "publish")
    assert again.wait(60) == 0, again.stderr.read()
    assert feedparser.parse(str(out / "feed.atom")).bozo == 0


def _pg_binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@pytest.fixture
def throwaway_postgres(tmp_path):
    """A PostgreSQL cluster of the test's own (never the machine's shared server), made
    with the installed binaries on a free port, so the test may restart it."""
    import pwd
    import shutil as sh
    import socket

    binaries = _pg_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) installed")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if sh.which("runuser") is None:
            pytest.skip("running as root without runuser to drop to the postgres user")
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user")
        run_as = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    if run_as:
        os.chown(folder, user.pw_uid, user.pw_gid)
    data = folder / "data"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    log = folder / "log"

    def pg_ctl(*args: str) -> None:
        # the server's output goes to its log file: a pipe held open by the server would
        # keep pg_ctl's caller waiting for ever
        subprocess.run(
            [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l", str(log), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=90,
        )

    subprocess.run(
        [*run_as, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl("-o", options, "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", pg_ctl, options
    finally:
        subprocess.run(
            [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        sh.rmtree(folder, ignore_errors=True)


def test_postgresql_restarted_mid_poll_loses_nothing(tmp_path, site, throwaway_postgres):
    from aggregator.config import settings_from_dict
    from aggregator.core import Aggregator

    from .conftest import base_settings

    url, pg_ctl, options = throwaway_postgres
    for n in range(FEEDS):
        body = rss(item(f"Post {n}", guid=f"p{n}", categories=TAG))
        site.routes[f"/feed/{n}"] = Response(body, delay=0.1)
    settings = settings_from_dict(base_settings(tmp_path, url, polling={"concurrency": 4}))
    with Aggregator(settings) as agg:
        for n in range(FEEDS):
            feed = site.url(f"/feed/{n}")
            contributor = agg.storage.feeds.add_contributor(f"Blog {n}", feed, False, agg.now())
            agg.storage.feeds.add_feed(contributor, feed, "main", "", agg.now())
        results: list = []
        poller = threading.Thread(target=lambda: results.append(agg.update_feeds()))
        poller.start()
        deadline = time.monotonic() + 20
        while len(site.requests) < FEEDS // 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        pg_ctl("-m", "fast", "-o", options, "restart")  # gone mid-poll, then back
        poller.join(120)
        assert not poller.is_alive() and results, "the poll did not come through the restart"
        (first,) = results
        for failed in (r for r in first.results if r.outcome == "failed"):
            assert failed.error.startswith("database unavailable"), failed.error
        # no driver text reaches what an organiser reads
        assert all("psycopg" not in (row.reason or "") for row in agg.status())
        second = agg.update_feeds(include_not_due=True)
        assert second.failed == 0
        with agg.storage.engine.connect() as conn:
            import sqlalchemy

            titles = conn.execute(sqlalchemy.text("SELECT title FROM post ORDER BY title"))
            assert sorted(t for (t,) in titles) == sorted(f"Post {n}" for n in range(FEEDS))


def _mounted_tmpfs(folder: Path, size: str) -> bool:
    """A small tmpfs of the test's own (needs root); False where it cannot be made."""
    folder.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
    )
    return made.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "disk"
    if os.geteuid() != 0 or not _mounted_tmpfs(folder, "256k"):
        pytest.skip("making a small tmpfs needs root and mount")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_full_output_folder_is_one_line_and_the_old_files_stay(tmp_path, site, small_disk):
    site.routes["/feed/0"] = Response(rss(item("A short post", guid="p0", categories=TAG)))
    for n in range(1, FEEDS):
        site.routes[f"/feed/{n}"] = Response(rss())
    config = _config(tmp_path, site.base.rstrip("/"))
    config.write_text(config.read_text().replace(str(tmp_path / "out"), str(small_disk / "out")))
    assert _cli(config, "poll").returncode == 0
    assert _cli(config, "publish").returncode == 0
    before = {p.name: p.read_bytes() for p in (small_disk / "out").iterdir() if p.is_file()}
    # then forty long posts: the new outputs no longer fit
    words = "<p>" + "Many words about the week. " * 400 + "{}</p>"
    for n in range(FEEDS):
        posts = [
            item(
                f"Long post {n}.{k}",
                guid=f"l{n}-{k}",
                categories=TAG,
                content=words.format(f"{n}.{k}"),
            )
            for k in range(2)
        ]
        site.routes[f"/feed/{n}"] = Response(rss(*posts))
    assert _cli(config, "poll", "--all").returncode == 0
    line = _one_line_error(_cli(config, "publish"))
    assert "No space left on device" in line and "the old file stays" in line
    after = {p.name: p.read_bytes() for p in (small_disk / "out").iterdir() if p.is_file()}
    assert after == before  # whole, as they were; no temporary file left behind
    assert not [p for p in (small_disk / "out").iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_database_is_one_line_and_loses_nothing(tmp_path, site):
    disk = tmp_path / "ro"
    if os.geteuid() != 0 or not _mounted_tmpfs(disk, "16m"):
        pytest.skip("making a read-only tmpfs needs root and mount")
    try:
        for n in range(FEEDS):
            site.routes[f"/feed/{n}"] = Response(
                rss(item(f"Post {n}", guid=f"p{n}", categories=TAG))
            )
        config = _config(tmp_path, site.base.rstrip("/"))
        config.write_text(config.read_text().replace(str(tmp_path / "data"), str(disk / "data")))
        assert _cli(config, "poll").returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        for command in ("poll", "digest"):
            line = _one_line_error(_cli(config, command, *(["--all"] if command == "poll" else [])))
            assert "database" in line, line
            assert not re.search(r"sqlite3|sqlalchemy|\[SQL", line), line
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        again = _cli(config, "poll", "--all")
        assert again.returncode == 0 and "0 failed" in again.stdout, again.stderr
        assert _posts(disk / "data" / "faults.db") == sorted((f"Post {n}", 1) for n in range(FEEDS))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_digest_killed_half_way_sends_nobody_two(tmp_path, site):
    from aggregator.loopback import MailSink

    readers = [f"reader{n}@example.org" for n in range(20)]
    for n in range(FEEDS):
        site.routes[f"/feed/{n}"] = Response(rss(item(f"Post {n}", guid=f"p{n}", categories=TAG)))
    with MailSink(delay=0.1) as mail:
        config = _config(tmp_path, site.base.rstrip("/"))
        config.write_text(
            config.read_text() + f'\n[digest]\nsmtp_host = "127.0.0.1"\nsmtp_port = {mail.port}\n'
        )
        assert _cli(config, "poll").returncode == 0
        assert _cli(config, "subscribers", "add", *readers).returncode == 0
        time.sleep(1.1)  # the posts are older than the digest
        digest = _run(config, "digest")
        deadline = time.monotonic() + 30
        while len(mail.messages) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        digest.send_signal(signal.SIGKILL)
        digest.wait(10)
        first = len(mail.messages)
        assert 5 <= first < len(readers), "the digest ended before it was killed"
        assert _integrity(tmp_path / "data" / "faults.db") == "ok"
        again = _cli(config, "digest")
        assert again.returncode == 0, again.stderr
        time.sleep(0.5)
        got = [r for envelope, _m in mail.messages for r in envelope]
    # nobody twice; everybody once, but for at most the one in flight at the kill, whose
    # fate is unknown (resolved towards not sending twice, and reported)
    assert len(got) == len(set(got))
    missing = set(readers) - set(got)
    assert len(missing) <= 1
    if missing:  # the next run says so (and does not send it again)
        assert "1 interrupted by a crash while sending" in again.stdout
