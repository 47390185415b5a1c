"""Pages and published files answered from memory (`web.support.PageCache`,
`OutputFiles`) are never staler than before for a reader: a publish, by this `serve` or by
another on the same database and folder, shows at once (a published file within 0.1 s);
posts stored without a publish show within a second or two; each visitor still gets a form
of their own, and an organiser their own page. And `serve` itself: `--no-access-log` leaves
out the line per request, `--processes 2` runs and stops whole, a taken port is one line."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from starlette.testclient import TestClient

from aggregator.loopback import MailSink
from aggregator.web import create_app
from aggregator.web.files import OutputFiles

from .conftest import free_port, item, rss, serve_feed, worker_config

TAG = ("Co-production Week",)


def post(n: int) -> str:
    return item(
        f"Post number {n}",
        guid=f"p{n}",
        link=f"https://blog.example/{n}",
        categories=TAG,
        date=f"Wed, 05 Jul 2017 0{n}:00:00 +0000",
    )


@pytest.fixture
def mail():
    with MailSink() as sink:
        yield sink


@pytest.fixture
def blog(make_agg, site, clock, mail):
    """An aggregator with one blog of one post, published; `grow(n)` gives the blog posts
    1..n and polls it again (without publishing)."""
    agg = make_agg(
        digest={"smtp_host": "127.0.0.1", "smtp_port": mail.port, "sender": "d@example.org"}
    )
    url = serve_feed(site, "/blog", rss(post(1)))
    agg.add_contributor("Ann", url, feed=url)
    agg.update_feeds()
    agg.publish()

    def grow(n: int) -> None:
        serve_feed(site, "/blog", rss(*(post(k) for k in range(n, 0, -1))))
        clock.advance(hours=2)
        agg.update_feeds()

    return agg, grow


def csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_the_home_page_shows_a_publish_at_once_in_every_serve_process(blog, make_agg):
    agg, grow = blog
    other = make_agg()  # a second `serve` on the same database and output folder
    with TestClient(create_app(agg)) as here, TestClient(create_app(other)) as there:
        for client in (here, there):
            page = client.get("/").text
            assert "Post number 1" in page and "Post number 2" not in page
        grow(2)
        agg.publish()
        for client in (here, there):
            assert "Post number 2" in client.get("/").text
        agg.hide_post("https://blog.example/2")  # an organiser hides it: republished
        for client in (here, there):
            page = client.get("/").text
            assert "Post number 2" not in page and "Post number 1" in page


def test_posts_stored_without_a_publish_show_within_seconds(blog):
    agg, grow = blog
    app = create_app(agg)
    with TestClient(app) as client:
        assert "Post number 2" not in client.get("/").text
        grow(2)  # stored, not published: as in the middle of a long poll
        deadline = time.monotonic() + 10
        while "Post number 2" not in client.get("/").text:
            assert time.monotonic() < deadline, "the stored post never showed"
            time.sleep(0.1)


def test_each_visitor_gets_a_token_of_their_own_and_the_form_works(blog, mail):
    agg, _grow = blog
    app = create_app(agg)
    https = "https://example.org"
    with TestClient(app, base_url=https) as ann, TestClient(app, base_url=https) as bea:
        ann_page, bea_page = ann.get("/").text, bea.get("/").text
        ann_token, bea_token = csrf(ann_page), csrf(bea_page)
        assert ann_token != bea_token
        assert ann_page.replace(ann_token, "") == bea_page.replace(bea_token, "")
        refused = ann.post("/subscribe", data={"email": "a@example.org", "csrf": bea_token})
        assert refused.status_code == 403
        taken = ann.post("/subscribe", data={"email": "a@example.org", "csrf": ann_token})
        assert taken.status_code == 200 and "Check your inbox" in taken.text
        assert len(mail.messages) == 1


def test_the_page_from_memory_is_the_page_built_for_the_request(blog):
    agg, grow = blog
    grow(3)
    agg.publish()
    with TestClient(create_app(agg), base_url="https://example.org") as client:
        kept = client.get("/")  # the first page as everyone sees it, from memory
        built = client.get("/?page=1")  # the same page, built for this request
        assert kept.text == built.text and "Post number 3" in kept.text
        assert kept.headers["content-type"] == built.headers["content-type"]


def test_an_organiser_sees_their_own_page_not_the_shared_one(blog):
    agg, _grow = blog
    agg.add_organiser("org@example.org", "correct horse battery")
    app = create_app(agg)
    https = "https://example.org"  # the session cookie is https-only here
    with TestClient(app, base_url=https) as visitor, TestClient(app, base_url=https) as organiser:
        assert 'href="/admin"' not in visitor.get("/").text
        token = csrf(organiser.get("/admin/login").text)
        organiser.post(
            "/admin/login",
            data={"email": "org@example.org", "password": "correct horse battery", "csrf": token},
        )
        assert 'href="/admin"' in organiser.get("/").text
        assert 'href="/admin"' not in visitor.get("/").text


def test_published_files_follow_a_publish_within_a_moment_in_every_serve_process(blog, make_agg):
    """A file in memory is checked against the disk at most every `OutputFiles.RECHECK`
    seconds: a reader may be told 304 for that long after a publish, never longer."""
    agg, grow = blog
    other = make_agg()
    with TestClient(create_app(agg)) as here, TestClient(create_app(other)) as there:
        before = {}
        for name, client in (("here", here), ("there", there)):
            answer = client.get("/feed.atom")
            assert "Post number 1" in answer.text and "Post number 2" not in answer.text
            etag = before[name] = answer.headers["etag"]
            assert client.get("/feed.atom", headers={"If-None-Match": etag}).status_code == 304
        grow(2)
        agg.publish()
        published = time.monotonic()
        etags = set()
        for name, client in (("here", here), ("there", there)):
            while (
                answer := client.get("/feed.atom", headers={"If-None-Match": before[name]})
            ).status_code == 304:
                assert time.monotonic() - published < OutputFiles.RECHECK + 0.5, name
                time.sleep(0.01)
            assert answer.status_code == 200 and "Post number 2" in answer.text
            etags.add(answer.headers["etag"])
        assert len(etags) == 1 and before["here"] not in etags
        (etag,) = etags
        for client in (here, there):
            assert client.get("/feed.atom", headers={"If-None-Match": etag}).status_code == 304


def test_a_published_file_in_memory_is_still_checked_to_be_in_the_folder(blog, tmp_path):
    agg, _grow = blog
    feed = agg.settings.output_dir / "feed.atom"
    secret = tmp_path / "secret.txt"
    secret.write_text("not public")
    with TestClient(create_app(agg)) as client:
        assert client.get("/feed.atom").status_code == 200
        feed.unlink()
        feed.symlink_to(secret)  # now pointing out of the folder: refused, as before
        time.sleep(OutputFiles.RECHECK)  # until then, the file in memory is the answer
        answer = client.get("/feed.atom")
        assert answer.status_code == 404 and "not public" not in answer.text


@pytest.mark.parametrize("flag", ["--access-log", "--no-access-log"])
def test_serve_logs_each_request_unless_told_not_to(tmp_path, site, flag):
    config = worker_config(tmp_path, serve_feed(site, "/blog", rss(post(1))))
    command = [sys.executable, "-m", "aggregator", "--config", str(config)]
    subprocess.run([*command, "init"], check=True, capture_output=True, timeout=60)
    port = free_port()
    server = subprocess.Popen(
        [*command, "serve", "--port", str(port), flag],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/follow").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0, out
    assert ('"GET /follow HTTP/1.1" 200' in out) == (flag == "--access-log"), out


def test_a_published_file_from_memory_is_answered_as_the_route_answers_it(blog):
    """The first GET reads the file through the route; later ones are answered in front of
    the app (`web.files.answer_from_memory`), with the same headers, security headers too."""
    agg, _grow = blog
    with TestClient(create_app(agg)) as client:
        first = client.get("/feed.atom")
        again = client.get("/feed.atom")
        assert again.content == first.content and dict(again.headers) == dict(first.headers)
        assert again.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in again.headers["content-security-policy"]
        etag = first.headers["etag"]
        unchanged = client.get("/feed.atom", headers={"If-None-Match": f'"x", {etag}'})
        assert unchanged.status_code == 304 and unchanged.content == b""
        assert unchanged.headers["etag"] == etag and "content-length" not in unchanged.headers
        assert unchanged.headers["x-content-type-options"] == "nosniff"
        head = client.head("/feed.atom")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == first.headers["content-length"]
        assert client.get("/rss.xml", headers={"If-None-Match": etag}).status_code == 200


def test_serve_in_two_processes_polls_serves_survives_a_crash_and_stops_whole(tmp_path, site):
    """`serve --processes 2 --with-worker`: this process polls and publishes, two web
    processes answer on one port; one killed is started again while the other answers;
    SIGTERM stops them all and the command exits 0."""
    import os

    config = worker_config(tmp_path, serve_feed(site, "/blog", rss(post(1))))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "aggregator", "--config", str(config), "serve"]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--processes", "2", "--with-worker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []

    def web_processes(count: int) -> list[int]:
        """The pids of the web processes started so far, once there are `count`."""
        deadline = time.monotonic() + 30
        while (
            len(pids := [int(p) for p in re.findall(r"worker-\d+ with PID: (\d+)", "".join(lines))])
            < count
        ):
            assert server.poll() is None and time.monotonic() < deadline, "".join(lines)
            lines.append(server.stdout.readline())
        return pids

    def page_shows(text: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                if text in httpx.get(base + "/", timeout=5).text:
                    return
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)

    try:
        first, second = web_processes(2)
        page_shows("Post number 1")  # polled by this process, answered by a web process
        os.kill(first, signal.SIGKILL)
        for _ in range(20):  # the other one answers meanwhile: no request fails
            assert httpx.get(base + "/feed.atom", timeout=5).status_code == 200
        third = web_processes(3)[2]
        assert third not in (first, second)
        page_shows("Post number 1")
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=60)
    log = "".join(lines) + out
    assert server.returncode == 0, log
    assert "Traceback" not in log, log
    for pid in (second, third):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_serve_on_a_taken_port_says_so_in_one_line(tmp_path, site):
    import socket

    config = worker_config(tmp_path, serve_feed(site, "/blog", rss(post(1))))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "aggregator", "--config", str(config), "serve"]
        done = subprocess.run(
            [*command, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
