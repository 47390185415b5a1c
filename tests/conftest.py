"""Shared fixtures: a real HTTP server on loopback, a real database (SQLite file, and
PostgreSQL where AGGREGATOR_TEST_DATABASE_URL is set), and small feed builders."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
import sqlalchemy

from aggregator.config import settings_from_dict
from aggregator.core import Aggregator
from aggregator.loopback import LoopbackSite, Response
from aggregator.storage.db import drop_schema, make_engine

PG_ENV = "AGGREGATOR_TEST_DATABASE_URL"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "real-feeds"
ATOM_RNC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "atom.rnc"


def pytest_sessionstart(session: pytest.Session) -> None:
    """On CI the shared corpus and the Atom schema must be there: without them the
    corpus, fast-parser and schema tests would skip, and the run would look green."""
    if os.environ.get("CI"):
        missing = [str(p) for p in (CORPUS, ATOM_RNC) if not p.exists()]
        if missing:
            pytest.exit(f"CI is set but {', '.join(missing)} is missing", returncode=1)


@pytest.fixture
def site() -> Iterator[LoopbackSite]:
    with LoopbackSite() as s:
        yield s


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need ${PG_ENV} (set by .ci/run when a server answers)")
    engine = make_engine(url)
    try:
        drop_schema(engine)
    except sqlalchemy.exc.OperationalError as e:
        pytest.skip(f"PostgreSQL at ${PG_ENV} is not reachable: {e.orig}")
    engine.dispose()
    yield url


def base_settings(tmp_path: Path, database_url: str, **sections: dict[str, Any]) -> dict:
    data: dict[str, Any] = {
        "event": {
            "name": "Co-production Week 2017",
            "site_url": "https://example.org/coproweek/",
            "timezone": "Europe/London",
            "tags": ["Co-production Week", "#CoProductionWeek"],
            "keywords": ["co-production week"],
        },
        "database": {"url": database_url},
        # every test feed lives on 127.0.0.1: the per-host politeness limits would only slow tests
        "polling": {
            "allow_private_addresses": True,
            "timeout_seconds": 5,
            "per_host_concurrency": 16,
            "per_host_per_second": 1000,
        },
        "publish": {"output_dir": str(tmp_path / "output")},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values} if isinstance(values, dict) else values
    return data


class Clock:
    """A settable clock for the aggregator (so tests set "now" instead of waiting for it)."""

    def __init__(self, start: dt.datetime):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2017, 7, 5, 9, 0, tzinfo=dt.UTC))


@pytest.fixture
def make_agg(
    tmp_path: Path, database_url: str, clock: Clock
) -> Iterator[Callable[..., Aggregator]]:
    made: list[Aggregator] = []

    def build(**sections: dict[str, Any]) -> Aggregator:
        settings = settings_from_dict(base_settings(tmp_path, database_url, **sections))
        agg = Aggregator(settings, clock=clock)
        made.append(agg)
        return agg

    yield build
    for agg in made:
        agg.close()


# ---- feed builders ----


def rss(*items: str, title: str = "A blog", extra_ns: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        f'xmlns:dc="http://purl.org/dc/elements/1.1/" {extra_ns}><channel><title>{title}</title>'
        "<link>http://blog.example/</link><description>d</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode("utf-8")


def item(
    title: str,
    *,
    guid: str | None = None,
    link: str | None = None,
    date: str = "Wed, 05 Jul 2017 08:00:00 +0000",
    categories: tuple[str, ...] = (),
    content: str = "<p>Some words about the week.</p>",
) -> str:
    parts = [f"<title>{title}</title>"]
    if guid:
        parts.append(f'<guid isPermaLink="false">{guid}</guid>')
    if link:
        parts.append(f"<link>{link}</link>")
    if date:
        parts.append(f"<pubDate>{date}</pubDate>")
    parts += [f"<category><![CDATA[{c}]]></category>" for c in categories]
    parts.append(f"<content:encoded><![CDATA[{content}]]></content:encoded>")
    return "<item>" + "".join(parts) + "</item>"


def atom(*entries: str, title: str = "An Atom blog", base: str = "") -> bytes:
    base_attr = f' xml:base="{base}"' if base else ""
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><feed xmlns='http://www.w3.org/2005/Atom'{base_attr}>"
        f"<id>tag:example,2017:blog</id><title>{title}</title><updated>2017-07-05T00:00:00Z</updated>"
        + "".join(entries)
        + "</feed>"
    ).encode("utf-8")


def atom_entry(
    title: str,
    *,
    id: str,
    link: str = "",
    date: str = "2017-07-04T09:00:00Z",
    categories: tuple[str, ...] = (),
    scheme: str = "http://www.blogger.com/atom/ns#",
    content: str = "&lt;p&gt;Words.&lt;/p&gt;",
    extra: str = "",
) -> str:
    cats = "".join(f"<category scheme='{scheme}' term='{c}'/>" for c in categories)
    link_el = f"<link rel='alternate' type='text/html' href='{link}'/>" if link else ""
    return (
        f"<entry><id>{id}</id><published>{date}</published><updated>{date}</updated>{cats}"
        f"<title type='text'>{title}</title><content type='html'>{content}</content>{link_el}"
        f"{extra}</entry>"
    )


def serve_feed(site: LoopbackSite, path: str, body: bytes, **kwargs: Any) -> str:
    kwargs.setdefault("content_type", "application/xml; charset=utf-8")
    site.routes[path] = Response(body, **kwargs)
    return site.url(path)


def published(agg: Aggregator) -> list[Any]:
    """Publish, then read the combined feed back as a subscriber's reader would."""
    agg.publish()
    parsed = feedparser.parse(str(agg.settings.output_dir / "feed.atom"))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed.entries


def titles(agg: Aggregator) -> list[str]:
    return [e.title for e in published(agg)]


def worker_config(tmp_path: Path, feed_url: str) -> Path:
    """A config file for the command run as a real process, with one seeded contributor."""
    config = tmp_path / "event.toml"
    config.write_text(f"""
[event]
name = "E"
tags = ["Co-production Week"]
[database]
url = "sqlite:///{tmp_path / "worker.db"}"
[polling]
allow_private_addresses = true
[publish]
output_dir = "{tmp_path / "out"}"
[[contributors]]
name = "Blog"
url = "{feed_url}"
feed = "{feed_url}"
""")
    return config


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def web_server(
    tmp_path: Path, *, slow_callback: float | None = None, **sections: dict[str, Any]
) -> Iterator[tuple]:
    """The web app on a real socket: uvicorn on a free loopback port in a thread (where
    `serve` runs it under granian in processes of its own, which a test cannot reach
    into, nor run in asyncio's debug mode), with a mail sink for its emails; yields
    (base URL, aggregator, mail sink). With
    `slow_callback`, its event loop runs in asyncio's debug mode and reports every
    callback slower than that many seconds (to the `asyncio` logger). `sections` add to
    the settings (as `base_settings` takes them)."""
    import asyncio
    import threading
    import time

    import uvicorn

    from aggregator.loopback import MailSink
    from aggregator.web import create_app

    port = free_port()
    with MailSink() as mail:
        data = base_settings(
            tmp_path,
            f"sqlite:///{tmp_path / 'web.db'}",
            digest={"smtp_host": "127.0.0.1", "smtp_port": mail.port},
            **sections,
        )
        data["event"]["site_url"] = f"http://127.0.0.1:{port}/"
        agg = Aggregator(settings_from_dict(data))
        server = uvicorn.Server(
            uvicorn.Config(create_app(agg), host="127.0.0.1", port=port, log_level="warning")
        )

        def run() -> None:
            loop = asyncio.new_event_loop()
            if slow_callback is not None:
                loop.set_debug(True)
                loop.slow_callback_duration = slow_callback
            loop.run_until_complete(server.serve())
            loop.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}", agg, mail
        finally:
            server.should_exit = True
            thread.join(10)
            agg.close()
