"""The web app in a real browser (Debian's Chromium through Playwright), end to end:
feeds from a loopback blog server, email through a loopback SMTP server."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import time
from pathlib import Path

import pytest

from aggregator.loopback import Response

from .conftest import item, rss, serve_feed, web_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "screenshots"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="no Chromium here (.ci/run installs Debian's chromium)"
)


@pytest.fixture
def server(tmp_path, site):
    with web_server(tmp_path) as running:
        yield running


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def last_mail(mail, count: int):
    deadline = time.monotonic() + 10
    while len(mail.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return email.message_from_bytes(mail.messages[count - 1][1], policy=email.policy.default)


def test_contributor_registers_organiser_approves_reader_subscribes(server, browser, site):
    base, agg, mail = server
    feed = serve_feed(
        site,
        "/bea/feed",
        rss(
            item(
                "Our first co-production meeting",
                guid="b1",
                link="https://bea.example/1",
                categories=("Co-production Week",),
                content="<p>We met on Monday and wrote the plan together.</p>",
            ),
            item("Holiday photos", guid="b2", link="https://bea.example/2"),
            title="Bea's blog",
        ),
    )
    site.routes["/bea/"] = Response(
        f'<html><head><link rel="alternate" type="application/rss+xml" href="{feed}"></head>'
        "<body>Bea</body></html>".encode(),
        content_type="text/html",
    )
    agg.add_organiser("org@example.org", "a long password")

    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    # a contributor registers her blog
    page.goto(base + "/register")
    page.get_by_label("Your name").fill("Bea")
    page.get_by_label("Your blog's address").fill(site.url("/bea/"))
    page.get_by_label("Your email (for the organisers only)").fill("bea@example.org")
    page.get_by_role("button", name="Register").click()
    assert "We found your feed Bea's blog" in page.inner_text("main")
    shot(page, "register")

    # an organiser logs in, approves it and polls
    page.goto(base + "/admin")
    page.get_by_label("Email").fill("org@example.org")
    page.get_by_label("Password").fill("a long password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Approve").click()
    assert "Approved Bea" in page.inner_text(".flash")
    page.get_by_role("button", name="Poll all feeds now").click()
    assert "1 new" in page.inner_text(".flash")
    shot(page, "admin")
    page.goto(base + "/")
    assert "Our first co-production meeting" in page.inner_text("main")
    assert "Holiday photos" not in page.inner_text("main")
    # the contributor asks whether her posts are in
    page.get_by_role("link", name="Is my post in?").click()
    page.get_by_label("Your post's address").fill("https://bea.example/2")
    page.get_by_role("button", name="Check").click()
    assert "its labels" in page.inner_text("main") or "no labels" in page.inner_text("main")
    page.get_by_label("Your post's address").fill("https://bea.example/1")
    page.get_by_role("button", name="Check").click()
    assert "Yes. Included since" in page.inner_text("main")
    shot(page, "check")

    # a reader subscribes, confirms from the email, gets a digest, unsubscribes in one click
    reader = browser.new_page()
    reader.goto(base + "/")
    shot(reader, "home")
    reader.get_by_label("Your email address").fill("reader@example.org")
    reader.get_by_role("button", name="Subscribe").click()
    assert "Check your inbox" in reader.inner_text("main")
    confirmation = last_mail(mail, 1)
    link = re.search(r"http://\S+/confirm/\S+", confirmation.get_content()).group(0)
    reader.goto(link)
    shot(reader, "confirm")
    reader.get_by_role("button", name="Yes, send me the digest").click()
    assert "Subscribed" in reader.inner_text("h1")
    time.sleep(0.01)
    report = agg.send_digest()
    assert report.sent == ["reader@example.org"]
    digest = last_mail(mail, 2)
    assert "Our first co-production meeting" in digest.get_body(("plain",)).get_content()
    unsubscribe = re.search(r"<(http://[^>]+)>", str(digest["List-Unsubscribe"])).group(1)
    reader.goto(unsubscribe)
    shot(reader, "unsubscribe")
    reader.get_by_role("button", name="Unsubscribe").click()
    assert "Unsubscribed" in reader.inner_text("h1")
    assert agg.storage.subscribers.active() == []
