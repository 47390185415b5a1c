"""Several workers, and several web processes, on one PostgreSQL: every feed fetched
once per round (counted at the feed server), a killed worker's feeds taken over when
its lease runs out, one digest per subscriber however many processes send, the web
app's limits shared. And SQLite's one-worker rule.

Everything runs for real: `aggregator` processes, the benchmarks' feed server on
loopback (many loopback addresses, so that there are many hosts), an SMTP sink, and the
PostgreSQL server named by $AGGREGATOR_TEST_DATABASE_URL (skipped without it)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from aggregator.loopback import MailSink
from aggregator.storage.db import drop_schema, make_engine

from .conftest import PG_ENV, free_port

ROOT = Path(__file__).resolve().parents[1]
TAG = ("Co-production Week",)
# what a database driver's error looks like: none of it may reach an organiser
DRIVER_TEXT = re.compile(r"Traceback|DETAIL|psycopg|sqlalchemy|\[SQL|IntegrityError", re.I)


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"several workers need PostgreSQL: set ${PG_ENV} (.ci/run does)")
    engine = make_engine(url)
    try:
        drop_schema(engine)
    except sqlalchemy.exc.OperationalError as e:
        pytest.skip(f"PostgreSQL at ${PG_ENV} is not reachable: {e.orig}")
    yield url
    drop_schema(engine)
    engine.dispose()


@contextmanager
def feed_server(feeds: int, hosts: int, latency_ms: float, entries: int = 5) -> Iterator[int]:
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "feedserver.py"),
            *("--feeds", str(feeds), "--hosts", str(hosts), "--entries", str(entries)),
            *("--latency-ms", str(latency_ms)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline().split()
        assert line[:1] == ["port"], line
        yield int(line[1])
    finally:
        server.kill()
        server.wait()


def fetched(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats") as answer:
        return {p: n for p, n in json.load(answer).items() if p.startswith("/feed/")}


def config(
    tmp_path: Path, url: str, port: int, feeds: int, hosts: int, *, name: str = "event", **extra
) -> Path:
    polling = {
        "allow_private_addresses": "true",
        "concurrency": 16,
        "per_host_concurrency": 4,
        "per_host_per_second": 1000,
    } | extra.pop("polling", {})
    sections = {
        "event": {"name": '"Worker Week"', "tags": '["Co-production Week"]'},
        "database": {"url": f'"{url}"'},
        "polling": polling,
        "publish": {"output_dir": f'"{tmp_path / (name + "-out")}"'},
    } | extra
    lines = [
        f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
        for section, values in sections.items()
    ]
    for n in range(feeds):
        feed = f"http://127.0.0.{n % hosts + 1}:{port}/feed/{n}"
        lines.append(f'[[contributors]]\nname = "Blog {n}"\nurl = "{feed}"\nfeed = "{feed}"\n')
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines))
    return path


def aggregator(path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--config", str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen, timeout: float = 180) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out + err


def stored_posts(url: str) -> list[tuple[str, str, str | None]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sqlalchemy.text(
                    "SELECT c.name, p.title, p.link FROM post p"
                    " JOIN contributor c ON c.id = p.contributor_id"
                )
            ).all()
            return sorted((a, b, c) for a, b, c in rows)
    finally:
        engine.dispose()


def query(url: str, sql: str) -> list[tuple]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sqlalchemy.text(sql))]
    finally:
        engine.dispose()


def test_three_workers_fetch_every_feed_once_and_store_what_one_would(tmp_path, pg_url):
    feeds = 2000
    with feed_server(feeds, hosts=20, latency_ms=20) as port:
        path = config(tmp_path, pg_url, port, feeds, 20)
        workers = [aggregator(path, "poll") for _ in range(3)]
        outputs = [finished(w) for w in workers]
        counts = fetched(port)
        # every blog fetched exactly once, by one of the three
        assert len(counts) == feeds
        assert {n for n in counts.values()} == {1}
        for out in outputs:
            assert not DRIVER_TEXT.search(out), out
            assert "0 failed" in out, out
        polled = [int(re.search(r"feeds: (\d+) fetched", out).group(1)) for out in outputs]
        assert sum(polled) == feeds
        assert all(n > 0 for n in polled), f"a worker had nothing to do: {polled}"
        # the same posts as one worker on its own
        alone = f"sqlite:///{tmp_path / 'alone.db'}"
        finished(aggregator(config(tmp_path, alone, port, feeds, 20, name="alone"), "poll"))
    posts = stored_posts(pg_url)
    assert len(posts) == feeds
    assert posts == stored_posts(alone)
    assert query(pg_url, "SELECT count(*) FROM feed WHERE lease_owner IS NOT NULL") == [(0,)]


def test_a_killed_workers_feeds_are_taken_over_when_its_lease_runs_out(tmp_path, pg_url):
    feeds = 300
    with feed_server(feeds, hosts=10, latency_ms=150) as port:
        path = config(
            tmp_path,
            pg_url,
            port,
            feeds,
            10,
            polling={"concurrency": 4, "per_host_concurrency": 2, "lease_seconds": 3},
        )
        first = aggregator(path, "poll")
        deadline = time.monotonic() + 60
        while sum(fetched(port).values()) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        held = {
            u.split(":", 2)[2].partition("/")[2]
            for (u,) in query(pg_url, "SELECT url FROM feed WHERE lease_owner IS NOT NULL")
        }
        assert held, "the killed worker held no feeds"
        others = [aggregator(path, "poll") for _ in range(2)]
        outputs = [finished(w) for w in others]
        counts = fetched(port)
    for out in outputs:
        assert not DRIVER_TEXT.search(out), out
    # every feed was read; only those the killed worker held were read twice
    assert len(counts) == feeds
    twice = {p.lstrip("/") for p, n in counts.items() if n > 1}
    assert twice <= held
    assert max(counts.values()) <= 2
    # and every post is stored once
    posts = stored_posts(pg_url)
    assert len(posts) == len(set(posts)) == feeds
    assert query(pg_url, "SELECT count(*) FROM feed WHERE last_fetched_at IS NULL") == [(0,)]


def test_two_workers_storing_the_same_posts_at_once_keep_each_post_once(tmp_path, pg_url):
    """Cross-posts: feed n on one host and feed n on another carry the same posts, and the
    two hosts go to different workers, which store them at the same moment."""
    from aggregator.loopback import LoopbackSite

    from .conftest import item, rss, serve_feed

    feeds = 60
    with LoopbackSite("127.0.0.1") as one, LoopbackSite("127.0.0.2") as two:
        lines = [
            '[event]\nname = "Worker Week"\ntags = ["Co-production Week"]\n',
            f'[database]\nurl = "{pg_url}"\n',
            "[polling]\nallow_private_addresses = true\nconcurrency = 8\n"
            "per_host_concurrency = 8\nper_host_per_second = 1000\n",
            f'[publish]\noutput_dir = "{tmp_path / "out"}"\n',
        ]
        for n in range(feeds):
            posts = [
                item(
                    f"Shared post {n}-{k}",
                    guid=f"{n}-{k}",
                    link=f"https://blog.example/{n}/{k}",
                    categories=TAG,
                )
                for k in range(3)
            ]
            for site, who in ((one, "First"), (two, "Second")):
                url = serve_feed(site, f"/feed/{n}", rss(*posts))
                lines.append(
                    f'[[contributors]]\nname = "{who} {n}"\nurl = "{url}"\nfeed = "{url}"\n'
                )
        path = tmp_path / "event.toml"
        path.write_text("\n".join(lines))
        outputs = [finished(w) for w in [aggregator(path, "poll") for _ in range(2)]]
    for out in outputs:
        assert not DRIVER_TEXT.search(out) and "0 failed" in out, out
    links = [link for _name, _title, link in stored_posts(pg_url)]
    assert len(links) == len(set(links)) == feeds * 3
    # each kept once, with the other feed's copy as its alternate
    assert query(pg_url, "SELECT count(*) FROM postsource") == [(feeds * 6,)]
    assert query(pg_url, "SELECT count(*) FROM postsource WHERE is_primary") == [(feeds * 3,)]


def test_two_stores_of_the_same_post_at_the_same_moment_keep_it_once(pg_url, monkeypatch):
    """Deterministic: each store is held after it has looked for the post, until the other
    has looked too (or a second has passed). Workers that decided from the same picture
    would both keep it; stored one at a time, the second finds the first's post."""
    import threading

    from aggregator.records import PostIntent
    from aggregator.storage import Storage
    from aggregator.storage.posts import PostStore

    storage = Storage.open(pg_url)
    now = dt.datetime(2017, 7, 5, tzinfo=dt.UTC)
    feeds = []
    for n in range(2):
        contributor = storage.feeds.add_contributor(
            f"Blog {n}", f"https://b{n}.example/", False, now
        )
        feeds.append(
            (
                storage.feeds.add_feed(contributor, f"https://b{n}.example/feed", "main", "", now),
                contributor,
            )
        )
    looked = threading.Barrier(2)
    real = PostStore._same_posts

    def same_posts(conn, fresh):
        found = real(conn, fresh)
        with suppress(threading.BrokenBarrierError):
            looked.wait(timeout=1)
        return found

    monkeypatch.setattr(PostStore, "_same_posts", staticmethod(same_posts))
    failures = []

    def store(feed_id: int, contributor_id: int) -> None:
        intent = PostIntent(
            entry_key=f"id:{feed_id}",
            canonical_link="https://news.example/story",
            link_key="news.example/story",
            fingerprint="f" * 64,
            title="The same story",
            link="https://news.example/story",
            author="",
            content_html="<p>Words</p>",
            text="Words",
            categories=TAG,
            published=now,
            updated=None,
            content_hash="h" * 64,
        )
        try:
            storage.posts.store_many([(feed_id, contributor_id, [intent])], now)
        except Exception as e:  # reported below: a thread's error would pass unseen
            failures.append(e)

    threads = [threading.Thread(target=store, args=f) for f in feeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    storage.close()
    assert failures == []
    assert query(pg_url, "SELECT count(*) FROM post") == [(1,)]
    assert query(
        pg_url, "SELECT count(*), sum(CASE WHEN is_primary THEN 1 ELSE 0 END) FROM postsource"
    ) == [(2, 1)]


def test_a_second_poll_in_one_process_is_refused_while_one_runs(make_agg):
    """The threads of one process (the dashboard's "poll now" beside the worker's poll)
    share one worker session: a second poll would free the first one's feeds."""
    from aggregator.errors import AggregatorError

    agg = make_agg()
    agg.storage.feeds.sync_seeds([], agg.now())
    cid = agg.storage.feeds.add_contributor("Ann", "https://a.example/", False, agg.now())
    agg.storage.feeds.add_feed(cid, "https://a.example/feed", "main", "", agg.now())
    # a poll in progress on another thread
    with agg._polling, pytest.raises(AggregatorError, match="a poll is running in this process"):
        agg.update_feeds()
    assert not agg._polling.locked()


def test_a_job_left_by_a_dead_worker_is_run_by_the_next(make_agg, clock):
    jobs = make_agg().storage.jobs
    lease = dt.timedelta(seconds=60)
    jobs.want("publish")
    assert jobs.claim("publish", "dead", clock.now, clock.now + lease, wanted=True)
    # its worker dies holding it: nobody else runs it while its lease lasts, then one does
    assert not jobs.claim("publish", "next", clock.now, clock.now + lease, wanted=True)
    clock.advance(seconds=61)
    assert jobs.claim("publish", "next", clock.now, clock.now + lease, wanted=True)
    assert not jobs.claim("publish", "third", clock.now, clock.now + lease, wanted=True)
    jobs.finish("publish", "next", clock.now)
    assert not jobs.claim("publish", "third", clock.now, clock.now + lease, wanted=True)
    jobs.want("publish")  # asked for again
    assert jobs.claim("publish", "third", clock.now, clock.now + lease, wanted=True)


def test_three_workers_and_the_digest_command_send_each_subscriber_one_digest(tmp_path, pg_url):
    readers = [f"reader{n}@example.org" for n in range(25)]
    with feed_server(10, hosts=2, latency_ms=5) as port, MailSink() as mail:
        path = config(
            tmp_path,
            pg_url,
            port,
            10,
            2,
            event={"name": '"Worker Week"', "tags": '["Co-production Week"]', "timezone": '"UTC"'},
            digest={"send_at": '"00:00"', "smtp_host": '"127.0.0.1"', "smtp_port": mail.port},
        )
        finished(aggregator(path, "poll"))
        finished(aggregator(path, "subscribers", "add", *readers))
        time.sleep(1.1)  # posts seen before the digest moment
        # the send time (00:00) has passed and today's digest is not done: each worker
        # sees it at its first tick, as a worker taking over from a dead one would
        workers = [aggregator(path, "run") for _ in range(3)]
        command = aggregator(path, "digest")
        out = finished(command)
        assert not DRIVER_TEXT.search(out), out
        deadline = time.monotonic() + 60
        while len(mail.messages) < len(readers) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)  # time for a second copy, if anything were to send one
        for w in workers:
            w.send_signal(signal.SIGTERM)
        logs = [finished(w, 30) for w in workers]
        recipients = sorted(r for envelope, _m in mail.messages for r in envelope)
    assert recipients == sorted(readers)
    for log in logs:
        assert not DRIVER_TEXT.search(log), log
    assert query(pg_url, "SELECT count(*) FROM worker") == [(0,)]


@contextmanager
def serving(path: Path) -> Iterator[str]:
    port = free_port()
    process = aggregator(path, "serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "the web app did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def form_token(client: httpx.Client, path: str = "/") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def test_two_web_processes_enforce_one_set_of_limits(tmp_path, pg_url):
    path = config(tmp_path, pg_url, 9, 0, 1)
    finished(
        aggregator(path, "organisers", "add", "org@example.org", "--password", "long enough pass")
    )
    with serving(path) as one, serving(path) as two:
        # a session opened at one process works at the other, and ends at both
        organiser = httpx.Client(base_url=one)
        token = form_token(organiser, "/admin/login")
        account = {"email": "org@example.org", "password": "long enough pass", "csrf": token}
        assert organiser.post("/admin/login", data=account).status_code == 303
        other = httpx.Client(base_url=two, cookies=organiser.cookies)
        assert "Workers (" in other.get("/admin").text
        other.post("/admin/logout", data={"csrf": form_token(other, "/admin")})
        assert organiser.get("/admin").status_code == 303  # back to the login page
        clients = [httpx.Client(base_url=one), httpx.Client(base_url=two)]
        codes = []
        for n in range(7):  # five an hour from one address, whichever process answers
            client = clients[n % 2]
            answer = client.post(
                "/subscribe",
                data={"email": f"person{n}@example.org", "csrf": form_token(client)},
            )
            codes.append(answer.status_code)
        assert codes == [200] * 5 + [429] * 2
        logins = []
        for n in range(11):  # ten tries in 15 minutes (the one above counted), across both
            client = clients[n % 2]
            answer = client.post(
                "/admin/login",
                data={
                    "email": "org@example.org",
                    "password": "wrong",
                    "csrf": form_token(client, "/admin/login"),
                },
            )
            logins.append(answer.status_code)
        assert logins == [401] * 9 + [429] * 2
        for client in clients:
            client.close()


def test_a_second_worker_on_sqlite_is_refused_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'data' / 'one.db'}"
    with feed_server(40, hosts=1, latency_ms=300) as port:
        path = config(tmp_path, url, port, 40, 1, polling={"concurrency": 2})
        first = aggregator(path, "poll")
        deadline = time.monotonic() + 30
        while not fetched(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(
            [sys.executable, "-m", "aggregator", "--config", str(path), "poll"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert "use PostgreSQL" in lines[0] and "aggregator poll" in lines[0]
        first.send_signal(signal.SIGTERM)
        first.wait(30)
        # once the first is gone (even killed), the next starts, and polls what is left
        out = finished(aggregator(path, "poll"))
        assert "0 failed" in out


def test_a_version_3_database_is_migrated_and_polls(make_agg, database_url, site):
    """Version 3 had no leases: opening it adds them and fills in each feed's host."""
    from .conftest import item, rss, serve_feed

    url = serve_feed(site, "/feed", rss(item("A week post", guid="p1", categories=TAG)))
    agg = make_agg()
    agg.add_contributor("Blog", url, feed=url)
    with agg.storage.engine.begin() as conn:
        run = lambda sql: conn.execute(sqlalchemy.text(sql))  # noqa: E731
        run("DROP INDEX ix_feed_host")
        run("DROP INDEX ix_feed_lease_owner")
        for column in ("host", "lease_owner", "last_claimed_at"):
            run(f"ALTER TABLE feed DROP COLUMN {column}")
        for table in ("worker", "job", "ratehit"):
            run(f"DROP TABLE {table}")
        run("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    agg.close()
    again = make_agg()
    assert query(database_url, "SELECT host FROM feed") == [("127.0.0.1",)]
    summary = again.update_feeds()
    assert (summary.fetched, summary.new, summary.failed) == (1, 1, 0)


def test_status_shows_the_workers_and_sigterm_frees_what_one_holds(tmp_path, pg_url):
    feeds = 200
    with feed_server(feeds, hosts=4, latency_ms=300) as port:
        path = config(tmp_path, pg_url, port, feeds, 4, polling={"concurrency": 4})
        worker = aggregator(path, "run")
        deadline = time.monotonic() + 60
        while sum(fetched(port).values()) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        shown = finished(aggregator(path, "status"))
        assert "Workers: 1 alive" in shown
        line = next(x for x in shown.splitlines() if "(aggregator run)" in x)
        assert re.search(r"last report \d+ s ago; polling \d+ feed\(s\): http://127\.0\.0\.", line)
        worker.send_signal(signal.SIGTERM)
        log = finished(worker, 60)
        assert "worker stopped" in log and not DRIVER_TEXT.search(log), log
        assert sum(fetched(port).values()) < feeds, "SIGTERM waited for the whole round"
    # what it had claimed and not polled is free at once, not when the lease runs out
    assert query(pg_url, "SELECT count(*) FROM feed WHERE lease_owner IS NOT NULL") == [(0,)]
    assert "Workers: none running" in finished(aggregator(path, "status"))
