"""Accessibility as a test, not a hope: every page of the web app and the published
pages in a real browser (Debian's Chromium through Playwright), logged out and as an
organiser: axe-core with every rule it has (WCAG 2.x A, AA and AAA, best practice,
experimental) at a desktop and a phone width; no sideways scrolling at 320px; a
visible focus ring on everything Tab reaches; and the main tasks done with the
keyboard alone. Screenshots of each page go to output/screenshots/."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from aggregator.loopback import LoopbackSite, Response

from .conftest import item, rss, serve_feed, web_server
from .test_browser import CHROMIUM, shot

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="no Chromium here (.ci/run installs Debian's chromium)"
)

TAG = ("Co-production Week",)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
NARROWEST = {"width": 320, "height": 640}
ORGANISER = ("org@example.org", "a long password")
#: the organiser the keyboard tests log in as (logging out ends every session of an account)
KEYBOARD_ORGANISER = ("keys@example.org", "another long password")
#: the digest archived while seeding
DIGEST_DAY = dt.date(2017, 7, 6)
#: how many elements the focus check tabs through on each page
FOCUS_STOPS = 15
#: the most Tab presses a keyboard flow spends looking for one control
MAX_TABS = 150


# ---- the site under test: one server, one browser, realistic content ----


def blog_page(feed: str, name: str) -> Response:
    """A blog's front page that announces its feed (as registration discovers it)."""
    return Response(
        f'<html><head><title>{name}</title><link rel="alternate" '
        f'type="application/rss+xml" href="{feed}"></head><body>{name}</body></html>'.encode(),
        content_type="text/html",
    )


def seed(agg: Any, blogs: LoopbackSite, base: str) -> SimpleNamespace:
    """Contributors with posts over three days and tags, one whose feed fails, blogs
    waiting for approval, subscribers (confirmed, pending, leaving), an archived digest
    and the published files."""
    ann = serve_feed(
        blogs,
        "/ann/feed",
        rss(
            item(
                "Our first co-production meeting",
                guid="a1",
                link="https://ann.example/meeting",
                categories=(*TAG, "Meetings"),
                date="Tue, 04 Jul 2017 09:30:00 +0000",
                content="<p>We met on Monday and wrote the plan together, carers and staff.</p>",
            ),
            item(
                "What the carers told us",
                guid="a2",
                link="https://ann.example/carers",
                categories=("#CoProductionWeek",),
                date="Wed, 05 Jul 2017 14:00:00 +0000",
                content="<p>Three things we heard, and what we are changing because of them.</p>",
            ),
            item(
                "Holiday photos",
                guid="a3",
                link="https://ann.example/holiday",
                date="Wed, 05 Jul 2017 15:00:00 +0000",
            ),
            title="Ann's notes",
        ),
    )
    bea = serve_feed(
        blogs,
        "/bea/feed",
        rss(
            item(
                "Designing services with the people who use them",
                guid="b1",
                link="https://bea.example/designing",
                categories=TAG,
                date="Thu, 06 Jul 2017 08:15:00 +0000",
                content="<p>A long read about a year of co-production in a small charity.</p>",
            ),
            item(
                "A post the organisers will hide",
                guid="b2",
                link="https://bea.example/to-hide",
                categories=TAG,
                date="Thu, 06 Jul 2017 10:00:00 +0000",
            ),
            title="Bea writes",
        ),
    )
    cal = serve_feed(
        blogs,
        "/cal/feed",
        rss(item("Hello", guid="c1", link="https://cal.example/1", categories=TAG), title="Cal"),
    )
    agg.add_contributor("Ann", blogs.url("/ann/"), feed=ann)
    agg.add_contributor("Bea", blogs.url("/bea/"), feed=bea)
    agg.add_contributor("Cal", blogs.url("/cal/"), feed=cal)
    agg.update_feeds(include_not_due=True)
    # Cal's host breaks: the dashboard shows a failing feed
    blogs.routes["/cal/feed"] = Response(b"Internal error", status=500, content_type="text/plain")
    agg.update_feeds(include_not_due=True)

    # blogs waiting for an organiser: one stays pending, one is approved by the keyboard
    # test; and one more, registered by the keyboard test
    for slug, name in (("eve", "Eve"), ("gus", "Gus"), ("fay", "Fay")):
        feed = serve_feed(
            blogs,
            f"/{slug}/feed",
            rss(
                item(f"{name}'s week", guid=f"{slug}1", link=f"https://{slug}.example/1"),
                title=f"{name}'s blog",
            ),
        )
        blogs.routes[f"/{slug}/"] = blog_page(feed, f"{name}'s blog")
    agg.register_blog("Eve", blogs.url("/eve/"), "eve@example.org")
    agg.register_blog("Gus", blogs.url("/gus/"), "gus@example.org")

    agg.add_organiser(*ORGANISER)
    agg.add_organiser(*KEYBOARD_ORGANISER)
    agg.add_subscriber("reader@example.org")
    agg.add_subscriber("leaver@example.org")
    agg.send_digest(DIGEST_DAY)  # archives the digest page and publishes
    agg.request_subscription("new@example.org", lambda token: f"{base}/confirm/{token}")
    agg.send_outbox()
    tokens = {s.email: s.token for s in agg.subscribers()}
    agg.publish()
    ann_id = next(c.id for c in agg.contributor_summaries() if c.name == "Ann")
    return SimpleNamespace(
        ann_id=ann_id,
        confirm_token=tokens["new@example.org"],
        unsubscribe_token=tokens["reader@example.org"],
        leaver_token=tokens["leaver@example.org"],
        fay=blogs.url("/fay/"),
    )


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("accessibility")
    about = (
        "A week of posts about **co-production**: people who use services and the people "
        "who run them, designing together. [Read about the week](https://example.org/about)."
    )
    event = {"about": about, "collect_from": "2017-07-03", "collect_until": "2017-07-09"}
    with LoopbackSite() as blogs, web_server(tmp, event=event) as (base, agg, mail):
        data = seed(agg, blogs, base)
        # the rate limits (tested in test_web.py) would stop a run that posts forms this often
        agg.allow = lambda *_args: True
        yield SimpleNamespace(base=base, agg=agg, mail=mail, blogs=blogs, **vars(data))


@pytest.fixture(scope="module")
def browser(app: SimpleNamespace) -> Iterator[Any]:
    """After `app`: the seeding runs event loops, which Playwright's own loop would refuse."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def log_in_with_form(page: Any, base: str, account: tuple[str, str]) -> None:
    page.goto(base + "/admin/login")
    page.get_by_label("Email").fill(account[0])
    page.get_by_label("Password").fill(account[1])
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert page.url.endswith("/admin"), page.url


@pytest.fixture(scope="module")
def contexts(browser: Any, app: SimpleNamespace) -> Iterator[dict[str, Any]]:
    """A visitor's browser and a logged-in organiser's (cookies kept across pages)."""
    visitor = browser.new_context(viewport=DESKTOP)
    organiser = browser.new_context(viewport=DESKTOP)
    page = organiser.new_page()
    log_in_with_form(page, app.base, ORGANISER)
    page.close()
    yield {"visitor": visitor, "organiser": organiser}
    visitor.close()
    organiser.close()


# ---- the pages ----


@dataclass(frozen=True)
class Page:
    name: str
    #: the path, with {fields} of the `app` fixture filled in
    path: str
    #: what to do on the page before checking it (a form sent, say)
    then: Callable[[Any, SimpleNamespace], None] | None = None
    who: tuple[str, ...] = ("visitor", "organiser")
    #: a file the `aggregator publish` step wrote, opened from disk
    published: bool = False


def register_with_bad_email(page: Any, app: SimpleNamespace) -> None:
    page.get_by_label("Your name").fill("Hal")
    page.get_by_label("Your blog's address").fill(app.blogs.url("/hal/"))
    page.get_by_label("Your email (for the organisers only)").fill("not an address")
    with page.expect_navigation():
        page.get_by_role("button", name="Register").click()
    assert page.get_by_label("Your email (for the organisers only)").get_attribute("aria-invalid")


def check_a_post(page: Any, app: SimpleNamespace) -> None:
    page.get_by_label("Your post's address").fill("https://ann.example/meeting")
    with page.expect_navigation():
        page.get_by_role("button", name="Check").click()
    assert "Yes." in page.inner_text("main")


def log_in_wrongly(page: Any, app: SimpleNamespace) -> None:
    page.get_by_label("Email").fill(ORGANISER[0])
    page.get_by_label("Password").fill("not the password")
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert "Wrong email or password" in page.inner_text("main")


def ask_to_remove(page: Any, app: SimpleNamespace) -> None:
    """The dashboard's second step before removing a contributor (nothing is removed)."""
    with page.expect_navigation():
        page.get_by_role("button", name="Remove… the contributor Cal").first.click()
    assert page.inner_text("h1") == "Remove Cal?"


def ask_to_send(page: Any, app: SimpleNamespace) -> None:
    """The dashboard's second step before sending the digest (nothing is sent)."""
    with page.expect_navigation():
        page.get_by_role("button", name="Send today's digest…").click()
    assert page.inner_text("h1") == "Send today's digest now?"


PAGES = [
    Page("home", "/"),
    Page("tag", "/?tag=" + quote("Co-production Week")),
    Page("contributors", "/contributors"),
    Page("contributor", "/contributors/{ann_id}"),
    Page("days", "/days/"),
    Page("day", "/days/2017-07-05"),
    Page("search", "/search?q=carers"),
    Page("follow", "/follow"),
    Page("digests", "/digests/"),
    Page("archived-digest", f"/digests/{DIGEST_DAY.isoformat()}.html"),
    Page("register", "/register"),
    Page("register-error", "/register", then=register_with_bad_email),
    Page("check", "/check"),
    Page("check-answer", "/check", then=check_a_post),
    Page("login", "/admin/login", who=("visitor",)),
    Page("login-error", "/admin/login", then=log_in_wrongly, who=("visitor",)),
    Page("admin", "/admin", who=("organiser",)),
    Page("admin-remove", "/admin", then=ask_to_remove, who=("organiser",)),
    Page("admin-send", "/admin", then=ask_to_send, who=("organiser",)),
    Page("confirm", "/confirm/{confirm_token}"),
    Page("unsubscribe", "/unsubscribe/{unsubscribe_token}"),
    Page("not-found", "/no-such-page"),
    Page("published-index", "index.html", who=("visitor",), published=True),
    Page("published-follow", "follow.html", who=("visitor",), published=True),
]


def cases() -> list[Any]:
    """Every page for each who sees it."""
    return [pytest.param((p, who), id=f"{p.name}-{who}") for p in PAGES for who in p.who]


def url_of(spec: Page, app: SimpleNamespace) -> str:
    if spec.published:
        return (app.agg.settings.output_dir / spec.path).resolve().as_uri()
    return app.base + spec.path.format(**vars(app))


@pytest.fixture
def opened(request: pytest.FixtureRequest, contexts: dict, app: SimpleNamespace) -> Iterator:
    """(page spec, who, the browser page showing it), at the desktop size."""
    spec, who = request.param
    page = contexts[who].new_page()
    page.set_viewport_size(DESKTOP)
    response = page.goto(url_of(spec, app))
    if not spec.published:
        expected = 404 if spec.name == "not-found" else 200
        assert response.status == expected, f"{page.url}: {response.status}"
    if spec.then:
        spec.then(page, app)
    yield spec, who, page
    page.close()


def opened_cases() -> Any:
    return pytest.mark.parametrize("opened", cases(), indirect=True)


# ---- axe-core ----


@pytest.fixture(scope="module")
def axe_rules(browser: Any) -> list[str]:
    """Every rule axe-core has: WCAG 2.x A, AA and AAA, best practice, and the
    experimental and deprecated ones it leaves off by default."""
    from axe_playwright_python.sync_playwright import Axe

    page = browser.new_page()
    page.evaluate(Axe().axe_script)
    rules = page.evaluate("() => axe.getRules().map(rule => rule.ruleId)")
    page.close()
    assert len(rules) > 90, rules
    return rules


def axe_violations(page: Any, rules: list[str]) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    options = {"runOnly": {"type": "rule", "values": rules}, "resultTypes": ["violations"]}
    results = Axe().run(page, options=options)
    return [
        f"{v['id']} ({v['impact']}): {v['help']}: "
        + "; ".join(" ".join(n["target"]) + " " + n["html"][:120] for n in v["nodes"])
        for v in results.response["violations"]
    ]


@opened_cases()
def test_axe_finds_no_violations_at_desktop_and_phone_widths(opened, axe_rules):
    spec, who, page = opened
    found = []
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        found += [f"{size['width']}px {v}" for v in axe_violations(page, axe_rules)]
        if who == "visitor" or spec.name.startswith("admin"):
            shot(page, f"{spec.name}-{size['width']}")
    assert not found, "\n".join(found)


@opened_cases()
def test_no_sideways_scrolling_at_320px(opened):
    _spec, _who, page = opened
    page.set_viewport_size(NARROWEST)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]}px wide in a {widths[1]}px window"


# ---- the focus ring ----


def luminance(rgb: tuple[int, int, int]) -> float:
    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_formula():
    assert round(contrast((0, 0, 0), (255, 255, 255)), 1) == 21.0
    assert round(contrast((0x76, 0x76, 0x76), (255, 255, 255)), 2) == 4.54


FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body || e === document.documentElement) return null;
  const s = getComputedStyle(e);
  const box = e.getBoundingClientRect();
  return {
    what: e.outerHTML.slice(0, 100),
    style: s.outlineStyle, width: parseFloat(s.outlineWidth), colour: s.outlineColor,
    seen: box.width > 0 && box.height > 0 && box.right > 0 && box.bottom > 0
          && box.left < innerWidth && box.top < innerHeight,
  };
}"""


@opened_cases()
def test_every_focused_element_shows_a_focus_ring(opened):
    _spec, _who, page = opened
    page.evaluate("() => window.scrollTo(0, 0)")
    stops = []
    for _ in range(FOCUS_STOPS):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None:
            break  # past the last focusable element
        stops.append(focused)
    assert stops, "Tab reaches nothing"
    problems = []
    for stop in stops:
        rgb = tuple(int(n) for n in re.findall(r"\d+", stop["colour"])[:3])
        if stop["style"] == "none" or stop["width"] < 2:
            problems.append(f"no visible outline ({stop['style']} {stop['width']}px)")
        elif contrast(rgb, (255, 255, 255)) < 3:
            problems.append(f"outline {stop['colour']} is under 3:1 against white")
        elif not stop["seen"]:
            problems.append("focused but off the screen")
        else:
            continue
        problems[-1] += f": {stop['what']}"
    assert not problems, "\n".join(problems)


# ---- keyboard only ----

ACTIVE = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const name = el => (el.getAttribute('aria-label')
      || (el.labels && el.labels.length ? [...el.labels].map(l => l.innerText).join(' ') : '')
      || el.innerText || el.value || '').trim().replace(/\\s+/g, ' ');
  // the row, card or list item it acts on, whatever the markup
  const around = e.closest('tr, li, article, [role=row]');
  return {name: name(e), tag: e.tagName.toLowerCase(), around: around ? around.innerText : ''};
}"""


def tab_to(page: Any, name: str | re.Pattern, near: str = "", *, back: bool = False) -> dict:
    """Press Tab (Shift+Tab with `back`) until the focused element's accessible name
    matches `name` (and, with `near`, its row or card mentions `near`)."""
    seen = []
    for _ in range(MAX_TABS):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        active = page.evaluate(ACTIVE)
        if active is None:
            continue
        if isinstance(name, re.Pattern):
            matches = re.fullmatch(name, active["name"]) is not None
        else:
            matches = active["name"] == name
        if matches and (near in active["around"] or near in active["name"]):
            return active
        seen.append(active["name"])
    raise AssertionError(f"Tab never reached {name!r} near {near!r}; went through {seen}")


def press_and_wait(page: Any, key: str) -> None:
    with page.expect_navigation():
        page.keyboard.press(key)


def keyboard_log_in(page: Any, base: str) -> None:
    page.goto(base + "/admin/login")
    tab_to(page, "Email")
    page.keyboard.type(KEYBOARD_ORGANISER[0])
    tab_to(page, "Password")
    page.keyboard.type(KEYBOARD_ORGANISER[1])
    press_and_wait(page, "Enter")
    assert page.url.endswith("/admin"), page.inner_text("main")


@pytest.fixture
def keyboard(browser: Any) -> Iterator[Any]:
    """A fresh browser (no cookies) at the phone size; tests drive it by keyboard."""
    context = browser.new_context(viewport=PHONE)
    yield context.new_page()
    context.close()


def mail_to(mail: Any, address: str) -> email.message.EmailMessage:
    """The first email the loopback SMTP server took for `address` (waiting for it)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for recipients, raw in list(mail.messages):
            if address in recipients:
                return email.message_from_bytes(raw, policy=email.policy.default)
        time.sleep(0.05)
    raise AssertionError(f"no email for {address}")


def test_keyboard_subscribe_and_confirm(keyboard, app):
    page = keyboard
    page.goto(app.base + "/")
    tab_to(page, "Your email address")
    page.keyboard.type("keys.reader@example.org")
    tab_to(page, "Subscribe")
    press_and_wait(page, "Enter")
    assert "Check your inbox" in page.inner_text("h1")
    letter = mail_to(app.mail, "keys.reader@example.org")
    link = re.search(r"http://\S+/confirm/\S+", letter.get_content()).group(0)
    page.goto(link)  # followed from the email
    tab_to(page, "Yes, send me the digest")
    press_and_wait(page, "Space")
    assert "Subscribed" in page.inner_text("h1")
    active = [s.email for s in app.agg.subscribers() if s.active]
    assert "keys.reader@example.org" in active


def test_keyboard_register_a_blog(keyboard, app):
    page = keyboard
    page.goto(app.base + "/register")
    tab_to(page, "Your name")
    page.keyboard.type("Fay")
    tab_to(page, "Your blog's address")
    page.keyboard.type(app.fay)
    tab_to(page, "Your email (for the organisers only)")
    page.keyboard.type("fay@example.org")
    tab_to(page, "Register")
    press_and_wait(page, "Enter")
    assert "We found your feed Fay's blog" in page.inner_text("main")
    assert "Fay" in [r.name for r in app.agg.registrations()]


def test_keyboard_log_in(keyboard, app):
    keyboard_log_in(keyboard, app.base)
    assert keyboard.inner_text("h1") == "Dashboard"
    # and the way back out starts from the same keyboard: Shift+Tab from the end
    tab_to(keyboard, "Log out", back=True)


def dashboard_button(page: Any, label: str, near: str) -> None:
    """Press the dashboard's `label` button for `near` (found by its accessible name or
    its row), and say yes if the dashboard asks first; ends back on the dashboard."""
    tab_to(page, re.compile(re.escape(label) + r"\b.*"), near=near)
    press_and_wait(page, "Enter")
    if urlsplit(page.url).path != "/admin":  # a second step: "Yes, ..." or back
        tab_to(page, re.compile(r"Yes\b.*"))
        press_and_wait(page, "Enter")
    assert urlsplit(page.url).path == "/admin", page.url


def test_keyboard_approve_a_registration(keyboard, app):
    keyboard_log_in(keyboard, app.base)
    dashboard_button(keyboard, "Approve", "Gus")
    assert "Approved Gus" in keyboard.inner_text("main")
    # the result is focused where the organiser was: the next Tab stays in that part
    result = keyboard.evaluate(
        "() => [document.activeElement.id, document.activeElement.closest('section').id]"
    )
    assert result == ["result", "registrations"]
    assert "Gus" in [c.name for c in app.agg.contributors()]


def test_keyboard_hide_a_post(keyboard, app):
    title = "A post the organisers will hide"
    keyboard_log_in(keyboard, app.base)
    dashboard_button(keyboard, "Hide", title)
    assert "Hidden" in keyboard.inner_text("main")
    keyboard.goto(app.base + "/")
    assert title not in keyboard.inner_text("main")


def test_keyboard_unsubscribe(keyboard, app):
    page = keyboard
    page.goto(f"{app.base}/unsubscribe/{app.leaver_token}")
    tab_to(page, "Unsubscribe")
    press_and_wait(page, "Enter")
    assert "Unsubscribed" in page.inner_text("h1")
    assert "leaver@example.org" not in [s.email for s in app.agg.subscribers() if s.active]
