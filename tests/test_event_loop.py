"""Nothing slow runs on the web server's event loop: a real uvicorn server, with
asyncio's debug mode reporting every callback over 50 ms, while an organiser logs in and
loads the dashboard, a reader subscribes and a contributor registers a blog."""

from __future__ import annotations

import gc
import logging
import re

import httpx
import pytest

from .conftest import item, rss, serve_feed, web_server

SLOW = 0.05


class SlowCallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.slow: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "took" in message and "Executing" in message:
            self.slow.append(message)


@pytest.fixture
def debug_server(tmp_path, site):
    watcher = SlowCallbacks()
    logging.getLogger("asyncio").addHandler(watcher)
    # what earlier tests left in this process's heap is not the server's: a full garbage
    # collection over it took 200 ms inside a request late in a whole run (a real `serve`
    # has no such heap), so it is set aside for this test
    gc.collect()
    gc.freeze()
    try:
        with web_server(tmp_path, slow_callback=SLOW) as (base, agg, mail):
            for n in range(300):  # a dashboard with rows enough to take time to build
                agg.storage.feeds.add_contributor(
                    f"Contributor {n}", f"https://b{n}.example/", False, agg.now()
                )
            agg.add_organiser("org@example.org", "a long enough password")
            yield base, watcher, mail
    finally:
        gc.unfreeze()
        logging.getLogger("asyncio").removeHandler(watcher)


def _csrf(client: httpx.Client, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def test_no_callback_blocks_the_loop_for_50_ms(debug_server, site):
    base, watcher, mail = debug_server
    feed = serve_feed(site, "/blog/feed", rss(item("Hello", guid="1")))
    with httpx.Client(base_url=base, timeout=30) as client:
        token = _csrf(client, "/admin/login")
        for _ in range(3):  # argon2 takes ~50-100 ms a check
            client.post(
                "/admin/login",
                data={"email": "org@example.org", "password": "wrong password", "csrf": token},
            )
        login = client.post(
            "/admin/login",
            data={"email": "org@example.org", "password": "a long enough password", "csrf": token},
        )
        assert login.status_code in (200, 303)
        assert "Contributor 299" in client.get("/admin").text
        token = _csrf(client, "/")
        answer = client.post("/subscribe", data={"email": "ann@example.org", "csrf": token})
        assert "Check your inbox" in answer.text
        registered = client.post(
            "/register",
            data={"name": "Bea", "url": feed, "email": "bea@example.org", "csrf": token},
        )
        assert registered.status_code == 200, registered.text
    assert len(mail.messages) == 1
    assert watcher.slow == []
