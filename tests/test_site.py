"""The public site as a visitor meets it, through the real web app on both databases:
search, a tag's posts, contributors, days (the event's local days), the home page's
day headings and times, the event's own words and privacy note, the registration
form's errors, forms with cookies off, the login form, the published pages, excerpts
and long words."""
# ruff: noqa: F811

from __future__ import annotations

import datetime as dt
import email.utils
import html
import re

import pytest
from starlette.testclient import TestClient

from aggregator.outputs import publish as publish_module
from aggregator.web import create_app
from aggregator.web.support import Limits, RateLimit

from .conftest import item, rss, serve_feed

# the web app's fixtures (agg with a loopback mail server, web) and helpers are
# test_web's; tests naming them as arguments is how pytest uses them, not a redefinition
from .test_web import TAG, agg, csrf, login, mail, web  # noqa: F401

UTC = dt.UTC
#: for what no database decides (the page is the same whichever engine holds the posts)
ONE_ENGINE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def text_of(page: str) -> str:
    """The page's words as a reader sees them (tags dropped, spaces folded)."""
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", page).split()))


def titles_on(page: str) -> list[str]:
    """The titles of the posts listed on a page, top to bottom."""
    found = re.findall(r"<(h[23])><a href=\"[^\"]*\">([^<]*)</a></\1>", page)
    return [html.unescape(title) for _heading, title in found]


def rfc822(year: int, month: int, day: int, hour: int, minute: int = 0) -> str:
    return email.utils.format_datetime(dt.datetime(year, month, day, hour, minute, tzinfo=UTC))


def post(title: str, when: str, *, slug: str | None = None, **kwargs) -> str:
    """An item with a guid and link of its own (`slug`, else the title's first word)."""
    slug = slug or title.split()[0].lower()
    return item(title, guid=slug, link=f"https://blog.example/{slug}", date=when, **kwargs)


def blog(agg, site, name: str, *items: str, all_posts: bool = True) -> str:
    """A contributor whose blog (front page /name/) has a feed of these items."""
    feed = serve_feed(site, f"/{name.lower()}/feed", rss(*items, title=f"{name}'s blog"))
    agg.add_contributor(name, site.url(f"/{name.lower()}/"), feed=feed, all_posts=all_posts)
    return feed


# ---- search ----


@pytest.fixture
def searchable(agg, site):
    blog(
        agg,
        site,
        "Ann",
        post(
            "Notes from the allotment",
            rfc822(2017, 7, 5, 8),
            content="<p>We held three meetings about compost, not one.</p>",
        ),
        post("Kingfisher by the canal", rfc822(2017, 7, 5, 7), content="<p>A quiet walk.</p>"),
        post(
            "Kingfisher secrets",
            rfc822(2017, 7, 5, 6),
            slug="secrets",
            content="<p>Something only for the organisers.</p>",
        ),
    )
    agg.update_feeds()
    return agg


def found(web, query: str) -> list[str]:
    answer = web.get("/search", params={"q": query})
    assert answer.status_code == 200, (query, answer.text[:300])
    return titles_on(answer.text)


def test_search_finds_words_in_titles_and_text_with_stemming(searchable, web):
    assert found(web, "allotment") == ["Notes from the allotment"]  # in the title
    assert found(web, "compost") == ["Notes from the allotment"]  # in the text
    assert found(web, "kingfisher") == ["Kingfisher by the canal", "Kingfisher secrets"]
    # a word's other forms: the post says "meetings"
    assert found(web, "meeting") == ["Notes from the allotment"]
    assert found(web, "Meeting") == ["Notes from the allotment"]
    # every word must appear, in the title or the text
    assert found(web, "allotment   compost") == ["Notes from the allotment"]
    page = web.get("/search", params={"q": "compost"}).text
    assert "Posts with “compost”" in page


def test_search_says_when_nothing_is_found(searchable, web):
    page = web.get("/search", params={"q": "kingfisher compost"})
    assert page.status_code == 200 and titles_on(page.text) == []
    words = text_of(page.text)
    assert "No post has “kingfisher compost”" in words
    assert "Try fewer or other words: every word must appear." in words
    # the words are shown back as text, never as markup
    page = web.get("/search", params={"q": "<script>alert(1)</script>"}).text
    assert "<script>" not in page
    assert "No post has “<script>alert(1)</script>”" in text_of(page)


def test_search_never_shows_a_hidden_post(searchable, web):
    assert found(web, "secrets") == ["Kingfisher secrets"]
    searchable.hide_post("https://blog.example/secrets")
    assert found(web, "secrets") == []
    assert found(web, "organisers") == []
    assert found(web, "kingfisher") == ["Kingfisher by the canal"]


def test_search_takes_query_syntax_as_plain_words(searchable, web):
    # as syntax these would be a prefix, a column filter and OR: as words, nothing has them
    assert found(web, "kingf*") == []
    assert found(web, "title:kingfisher") == []
    assert found(web, "canal OR compost") == []
    # punctuation around a word leaves the word
    canal = ["Kingfisher by the canal"]
    for query in ('"canal', "canal*", "-canal", "(canal", "canal)", "canal:", "+canal"):
        assert found(web, query) == canal, query
    # "not" is a word the post has (PostgreSQL drops it as too common; SQLite finds it)
    assert found(web, "NOT compost") == ["Notes from the allotment"]
    for query in (
        '"',
        '""',
        "'",
        "*",
        ":",
        "(",
        ")",
        "-",
        "^",
        "AND",
        "OR",
        "NOT",
        "NEAR",
        "canal AND",
        "AND canal",
        "NOT NOT",
        "NEAR(canal walk)",
        "canal NEAR/2 walk",
        "kingfisher's",
        "'canal'",
        "canal & !walk | <->",
        "{title}: canal",
        "a\\b",
        "\"unbalanced (and* -odd: 'quotes",
    ):
        answer = web.get("/search", params={"q": query})
        assert answer.status_code == 200, (query, answer.text[:300])
        assert "<h1>Search the posts</h1>" in answer.text, query


def test_an_empty_search_shows_the_form(searchable, web):
    for path in ("/search", "/search?q=", "/search?q=+++"):
        answer = web.get(path)
        assert answer.status_code == 200, path
        assert '<form method="get" action="/search" role="search">' in answer.text
        assert '<input id="q" name="q" type="search" value=""' in answer.text
        assert 'id="results"' not in answer.text and titles_on(answer.text) == []


# ---- a tag's posts ----


def test_a_tag_shows_its_posts_under_the_events_own_spelling(agg, web, site):
    blog(
        agg,
        site,
        "Ann",
        post("Opening day", rfc822(2017, 7, 5, 8), categories=TAG),
        post("Hashtag spelling", rfc822(2017, 7, 5, 7), categories=("#CoProductionWeek", "Health")),
        post("Gardening notes", rfc822(2017, 7, 5, 6), categories=("Gardening",)),
    )
    agg.update_feeds()
    everything = web.get("/").text
    assert titles_on(everything) == ["Opening day", "Hashtag spelling", "Gardening notes"]
    assert '<a href="/?tag=coproductionweek">Co-production Week</a>' in everything
    assert "Showing posts tagged" not in everything

    for tag in ("coproductionweek", "#CoProductionWeek", "co-production-week"):
        page = web.get("/", params={"tag": tag}).text
        assert titles_on(page) == ["Opening day", "Hashtag spelling"], tag
        shown = "Showing posts tagged <strong>Co-production Week</strong>."
        assert shown in page, tag
        assert '<a href="/">Show every post</a>' in page
        assert "<title>Co-production Week · Co-production Week 2017</title>" in page

    gardening = web.get("/?tag=gardening").text
    assert titles_on(gardening) == ["Gardening notes"]
    # a tag the event does not name is shown as the link spells it
    assert "Showing posts tagged <strong>gardening</strong>." in gardening
    assert titles_on(web.get("/?tag=health").text) == ["Hashtag spelling"]


def test_an_unknown_tag_shows_the_empty_message(agg, web, site):
    blog(agg, site, "Ann", post("Opening day", rfc822(2017, 7, 5, 8), categories=TAG))
    agg.update_feeds()
    page = web.get("/?tag=nonesuch")
    assert page.status_code == 200 and titles_on(page.text) == []
    assert "No posts carry this tag." in page.text
    assert '<a href="/">Show every post</a>' in page.text


# ---- contributors ----


def some_contributors(agg, site):
    blog(
        agg,
        site,
        "Bob",
        post("Bob's only post", rfc822(2017, 7, 4, 12), slug="bob1"),
    )
    blog(
        agg,
        site,
        "Ann",
        post("Ann's older post", rfc822(2017, 7, 3, 9), slug="ann1"),
        post("Ann's newer post", rfc822(2017, 7, 5, 8), slug="ann2"),
    )
    # a blog with nothing for the event yet
    blog(agg, site, "Cy", post("Holiday snaps", rfc822(2017, 7, 5, 7), slug="cy"), all_posts=False)
    agg.update_feeds()
    return {c.name: c.id for c in agg.contributor_summaries()}


def card(page: str, name: str) -> str:
    """A contributor's entry (its HTML) on /contributors."""
    cards = re.findall(r"<li>(.*?)</li>", page.split('<ul class="cards">')[1], re.S)
    (found,) = [c for c in cards if f">{name}</a>" in c]
    return found


def test_contributors_are_listed_with_their_blog_and_number_of_posts(agg, web, site):
    ids = some_contributors(agg, site)
    page = web.get("/contributors").text
    assert "3 contributors write for Co-production Week 2017." in text_of(page)
    names = re.findall(r'<a href="/contributors/\d+">([^<]+)</a>', page)
    assert names == ["Ann", "Bob", "Cy"]
    ann = card(page, "Ann")
    assert f'href="/contributors/{ids["Ann"]}"' in ann
    assert "2 posts, the latest on 5 July 2017" in text_of(ann)
    assert f'<a href="{site.url("/ann/")}">Visit Ann’s blog</a>' in ann
    assert "1 post, the latest on 4 July 2017" in text_of(card(page, "Bob"))
    assert "No posts yet" in text_of(card(page, "Cy"))
    # a hidden post is not counted
    agg.hide_post("https://blog.example/ann2")
    assert "1 post, the latest on 3 July 2017" in text_of(
        card(web.get("/contributors").text, "Ann")
    )


def test_a_contributors_page_shows_their_posts_only_newest_first(agg, web, site):
    ids = some_contributors(agg, site)
    page = web.get(f"/contributors/{ids['Ann']}").text
    assert "<h1>Ann</h1>" in page
    assert "2 posts for Co-production Week 2017." in text_of(page)
    assert titles_on(page) == ["Ann's newer post", "Ann's older post"]
    assert f'<a href="{site.url("/ann/")}">Visit Ann’s blog</a>' in page
    assert titles_on(web.get(f"/contributors/{ids['Bob']}").text) == ["Bob's only post"]
    quiet = web.get(f"/contributors/{ids['Cy']}")
    assert quiet.status_code == 200 and "No posts yet." in quiet.text


def test_an_unknown_contributor_is_a_not_found_page(agg, web, site):
    some_contributors(agg, site)
    for path in (
        "/contributors/999999",
        "/contributors/0",
        "/contributors/99999999999999999999999",
        "/contributors/ann",
        "/contributors/-1",
        "/contributors/1.5",
    ):
        answer = web.get(path)
        assert answer.status_code == 404, path
        assert "<h1>Not found</h1>" in answer.text, path
    assert "There is no such contributor." in web.get("/contributors/999999").text


# ---- days (the event's local days: Europe/London in these tests) ----


def a_week_of_days(agg, site, clock):
    """Posts on three local days; one written at 23:30 UTC, 00:30 BST the next day."""
    clock.now = dt.datetime(2017, 7, 6, 12, 0, tzinfo=UTC)
    blog(
        agg,
        site,
        "Ann",
        post("Thursday morning", rfc822(2017, 7, 6, 8)),
        post("Tuesday lunch", rfc822(2017, 7, 4, 12)),
        post("Past midnight in London", rfc822(2017, 7, 3, 23, 30), slug="midnight"),
        post("Monday evening", rfc822(2017, 7, 3, 20)),
    )
    agg.update_feeds()


def test_days_lists_local_days_with_posts_newest_first(agg, web, site, clock):
    a_week_of_days(agg, site, clock)
    page = web.get("/days/").text
    listed = re.findall(r'<li><a href="/days/([\d-]+)">([^<]+)</a> \((\d+) posts?\)</li>', page)
    # in UTC, 3 July would have two posts and 4 July one
    assert listed == [
        ("2017-07-06", "Thursday 6 July 2017", "1"),
        ("2017-07-04", "Tuesday 4 July 2017", "2"),
        ("2017-07-03", "Monday 3 July 2017", "1"),
    ]


def test_a_day_shows_that_local_days_posts_and_links_to_the_days_around_it(agg, web, site, clock):
    a_week_of_days(agg, site, clock)
    page = web.get("/days/2017-07-04").text
    assert "<h1>Posts of Tuesday 4 July 2017</h1>" in page
    assert titles_on(page) == ["Tuesday lunch", "Past midnight in London"]
    assert "2 posts." in text_of(page)
    # the days around it that have posts (5 July has none)
    assert '<a href="/days/2017-07-03">← Monday 3 July 2017</a>' in page
    assert '<a href="/days/2017-07-06">Thursday 6 July 2017 →</a>' in page
    first = web.get("/days/2017-07-03").text
    assert titles_on(first) == ["Monday evening"]
    assert "/days/2017-07-02" not in first and '<a href="/days/2017-07-04">' in first
    last = web.get("/days/2017-07-06").text
    assert titles_on(last) == ["Thursday morning"] and "/days/2017-07-07" not in last
    empty = web.get("/days/2017-07-05")
    assert empty.status_code == 200 and "No posts that day." in empty.text
    assert (
        '<a href="/days/2017-07-04">' in empty.text and '<a href="/days/2017-07-06">' in empty.text
    )


@ONE_ENGINE
def test_a_malformed_day_is_a_not_found_page(agg, web):
    for day in ("2017-02-30", "2017-13-01", "yesterday", "2017-07-04x", "%00", "9999999-01-01"):
        answer = web.get(f"/days/{day}")
        assert answer.status_code == 404, day
        assert "That is not a date (use YYYY-MM-DD)." in answer.text, day


# ---- the home page: one heading per local day, the time zone named ----


def test_the_home_page_groups_posts_by_local_day_and_names_the_time_zone(agg, web, site, clock):
    a_week_of_days(agg, site, clock)
    page = web.get("/").text
    headings = re.findall(r'<h2 id="day-([\d-]+)"><a href="/days/\1">([^<]+)</a></h2>', page)
    assert headings == [
        ("2017-07-06", "Thursday 6 July 2017"),
        ("2017-07-04", "Tuesday 4 July 2017"),
        ("2017-07-03", "Monday 3 July 2017"),
    ]
    sections = dict(
        re.findall(
            r'<section class="day" aria-labelledby="day-([\d-]+)">(.*?)</section>', page, re.S
        )
    )
    assert titles_on(sections["2017-07-04"]) == ["Tuesday lunch", "Past midnight in London"]
    assert titles_on(sections["2017-07-03"]) == ["Monday evening"]
    assert "Times are in Europe/London time." in page
    assert '<time datetime="2017-07-04T00:30:00+01:00">00:30 BST</time>' in sections["2017-07-04"]
    assert '<time datetime="2017-07-03T21:00:00+01:00">21:00 BST</time>' in sections["2017-07-03"]


def test_winter_times_carry_their_own_zone_name(agg, web, site, clock):
    blog(agg, site, "Ann", post("Winter post", rfc822(2017, 1, 10, 23, 30)))
    agg.update_feeds()
    page = web.get("/").text
    assert '<h2 id="day-2017-01-10">' in page
    assert '<time datetime="2017-01-10T23:30:00+00:00">23:30 GMT</time>' in page


# ---- the event's own words, and the privacy note beside the email field ----

ABOUT = """Read **all** about [the week](https://example.org/week).

<script>alert("about")</script>

<b onclick="steal()">bold?</b> and [a trap](javascript:alert(1))
"""


@ONE_ENGINE
def test_the_about_text_is_shown_as_html_without_any_raw_html(make_agg):
    agg = make_agg(event={"about": ABOUT})
    agg.publish()
    published = (agg.settings.output_dir / "index.html").read_text()
    with TestClient(create_app(agg), base_url="https://example.org") as client:
        home = client.get("/").text
    for page in (home, published):
        about = re.search(r'<div class="about">(.*?)</div>', page, re.S).group(1)
        assert "<strong>all</strong>" in about
        assert re.search(r'<a href="https://example.org/week"[^>]*>the week</a>', about)
        assert 'rel="noopener noreferrer"' in about
        assert "<script" not in page and "<b " not in page
        assert 'href="javascript:' not in page
        # what was refused is still readable as text, not lost silently
        assert "alert(&quot;about&quot;)" in about or 'alert("about")' in html.unescape(about)


@ONE_ENGINE
def test_a_privacy_notice_is_linked_beside_the_email_field(make_agg):
    agg = make_agg(event={"privacy_url": "https://example.org/privacy"})
    with TestClient(create_app(agg), base_url="https://example.org") as client:
        page = client.get("/").text
    assert 'aria-describedby="privacy"' in page
    note = re.search(r'<p class="hint" id="privacy">(.*?)</p>', page, re.S).group(1)
    assert '<a href="https://example.org/privacy">our privacy notice</a>' in note
    assert "We keep only your email address" not in page


@ONE_ENGINE
def test_without_a_privacy_notice_the_built_in_sentence_is_tied_to_the_email_field(agg, web):
    page = web.get("/").text
    assert re.search(r'<input id="email"[^>]*aria-describedby="privacy"', page)
    note = re.search(r'<p class="hint" id="privacy">(.*?)</p>', page, re.S).group(1)
    assert note.startswith("We keep only your email address")
    assert "<a " not in note


# ---- registering a blog ----


@pytest.fixture
def register_form(agg, web):
    """The registration form, with room for more tries than a visitor gets in an hour."""
    web.app.state.limits = Limits(register_by_client=RateLimit("register-client", 100, 3600))
    token = csrf(web, "/register")

    def send(name: str, url: str, email: str = "bea@example.org"):
        return web.post("/register", data={"name": name, "url": url, "email": email, "csrf": token})

    return send


def field_error(page: str, field_id: str) -> str:
    """The error shown for a field, checked to be tied to it: the input is marked
    invalid and described by the message, and the summary links to the field."""
    message = re.search(rf'<p class="field-error" id="{field_id}-error">([^<]*)</p>', page)
    assert message, f"no error shown at #{field_id}"
    tag = re.search(rf'<input id="{field_id}"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in tag
    assert re.search(rf'aria-describedby="[^"]*\b{field_id}-error\b', tag)
    summary = re.search(r'<div class="error" role="alert">(.*?)</div>', page, re.S).group(1)
    assert f'<a href="#{field_id}">{message.group(1)}</a>' in summary
    return html.unescape(message.group(1))


def typed(page: str, field_id: str) -> str:
    return html.unescape(re.search(rf'<input id="{field_id}"[^>]*value="([^"]*)"', page).group(1))


def test_a_missing_name_is_shown_at_its_field_keeping_what_was_typed(agg, register_form):
    answer = register_form("  ", "https://bea.example/blog", "bea@example.org")
    assert answer.status_code == 400
    page = answer.text
    assert "<title>Error: Register your blog" in page
    assert field_error(page, "name") == "Give your name, as readers should see it."
    assert typed(page, "url") == "https://bea.example/blog"
    assert typed(page, "remail") == "bea@example.org"
    assert 'aria-invalid="true"' not in re.search(r'<input id="url"[^>]*>', page).group(0)
    assert agg.registrations() == []


def test_a_bad_address_is_shown_at_its_field_in_plain_words(agg, register_form):
    cases = [
        ("ftp://bea.example/", "We can only read public web addresses that start with http://"),
        ("http://", "We can only read public web addresses that start with http://"),
    ]
    for url, words in cases:
        answer = register_form("Bea O'Brien", url)
        assert answer.status_code == 400, url
        assert field_error(answer.text, "url").startswith(words), url
        assert typed(answer.text, "name") == "Bea O'Brien"
        assert typed(answer.text, "url") == url
    # the technical reason is there for who wants it, behind a disclosure
    assert "<summary>Technical detail</summary>" in answer.text
    bad_email = register_form("Bea", "https://bea.example/", "not an address")
    assert field_error(bad_email.text, "remail").startswith("Check your email address")
    assert typed(bad_email.text, "remail") == "not an address"
    assert agg.registrations() == []


@ONE_ENGINE
@pytest.mark.parametrize(
    ("status", "words"),
    [
        (404, "There is no page at this address"),
        (410, "There is no page at this address"),
        (403, "Your blog is private or refuses visitors"),
    ],
)
def test_an_address_the_server_refuses_is_explained(agg, register_form, site, status, words):
    """Was the generic sentence: the plain reasons looked for "HTTP 404" while the fetcher
    says "not found (404: …)"."""
    from aggregator.loopback import Response

    site.routes["/bea/"] = Response(b"no", status=status, content_type="text/plain")
    answer = register_form("Bea", site.url("/bea/"))
    assert answer.status_code == 400
    assert field_error(answer.text, "url").startswith(words)


def test_a_blog_already_included_is_told_so_at_once(agg, register_form, site):
    feed = blog(agg, site, "Ann", post("Opening day", rfc822(2017, 7, 5, 8)))
    asked_before = len(site.requests)
    home = site.url("/ann/")  # not served at all: discovery would fail with another reason
    for url in (home, home + "#top", home.replace("http://", "")):
        answer = register_form("Ann again", url)
        assert answer.status_code == 400, url
        assert field_error(answer.text, "url") == "This blog is already included, as Ann.", url
    assert len(site.requests) == asked_before  # nothing was fetched to say so
    # the feed itself, given as the address
    answer = register_form("Ann again", feed)
    assert "already included" in field_error(answer.text, "url")
    assert agg.registrations() == []


def test_an_address_typed_without_https_is_read_over_http_when_https_cannot_be(
    agg, register_form, site
):
    """A contributor types "host/path": it is tried over https, and the loopback site
    speaks plain HTTP only (as some small blogs do), so it is read over http. Before, the
    form said the blog did not answer."""
    url = serve_feed(site, "/bea/feed", rss(item("Bea's first", guid="1"), title="Bea's blog"))
    site.routes["/bea/"] = type(site.routes["/bea/feed"])(
        f'<html><head><link rel="alternate" type="application/rss+xml" href="{url}">'
        "</head></html>".encode(),
        content_type="text/html",
    )
    home = site.url("/bea/")
    # typed with https, it is never read over http
    answer = register_form("Bea", home.replace("http://", "https://"))
    assert answer.status_code == 400
    assert "Technical detail" in answer.text
    assert agg.registrations() == []
    answer = register_form("Bea", home.removeprefix("http://"))
    assert answer.status_code == 200, text_of(answer.text)[:300]
    assert "Thank you! We found your feed <strong>Bea&#39;s blog</strong>." in answer.text
    assert [(r.name, r.homepage, r.feed_url) for r in agg.registrations()] == [("Bea", home, url)]


# ---- forms with cookies off ----


@ONE_ENGINE
def test_a_form_sent_with_cookies_off_says_cookies_are_off(agg):
    for path, data in (
        ("/subscribe", {"email": "ann@example.org", "csrf": "anything"}),
        ("/register", {"name": "Bea", "url": "https://bea.example/", "csrf": ""}),
        ("/admin/login", {"email": "org@example.org", "password": "x"}),
    ):
        # a browser that blocks cookies: every visit comes without one
        with TestClient(create_app(agg), base_url="https://example.org") as fresh:
            answer = fresh.post(path, data=data)
        assert answer.status_code == 403, path
        assert "<h1>Cookies are off</h1>" in answer.text, path
        assert "Allow cookies for this site" in answer.text and "Form expired" not in answer.text
    assert agg.storage.subscribers.active() == [] and agg.registrations() == []


@ONE_ENGINE
def test_a_form_with_a_cookie_but_a_wrong_token_has_expired(agg, web):
    csrf(web)  # the visit that sets the cookie
    answer = web.post("/subscribe", data={"email": "ann@example.org", "csrf": "forged"})
    assert answer.status_code == 403
    assert "<h1>Form expired</h1>" in answer.text and "Cookies are off" not in answer.text
    missing = web.post("/subscribe", data={"email": "ann@example.org"})
    assert missing.status_code == 403 and "<h1>Form expired</h1>" in missing.text


# ---- login ----


def test_a_wrong_password_keeps_the_typed_email(agg, web):
    agg.add_organiser("org@example.org", "correct horse battery")
    token = csrf(web, "/admin/login")
    answer = web.post(
        "/admin/login",
        data={"email": "org@example.org", "password": "wrong horse battery", "csrf": token},
    )
    assert answer.status_code == 401
    page = answer.text
    assert 'id="login-error"' in page and "Wrong email or password" in page
    email_field = re.search(r'<input id="lemail"[^>]*>', page).group(0)
    assert 'value="org@example.org"' in email_field
    password_field = re.search(r'<input id="password"[^>]*>', page).group(0)
    assert "value=" not in password_field and "wrong horse battery" not in page
    assert 'aria-describedby="login-error"' in password_field and "autofocus" in password_field


# ---- the published pages ----


def test_the_published_page_is_paginated_and_stale_pages_go(agg, site, clock):
    per_page = publish_module.PAGE_SIZE
    count = per_page + 3
    clock.now = dt.datetime(2017, 7, 6, 12, 0, tzinfo=UTC)
    start = dt.datetime(2017, 7, 4, 0, 0, tzinfo=UTC)
    items = [
        item(
            f"Post number {n}",
            guid=f"p{n}",
            link=f"https://blog.example/{n}",
            date=email.utils.format_datetime(start + dt.timedelta(hours=n)),
        )
        for n in range(count)
    ]
    blog(agg, site, "Ann", *items)
    agg.update_feeds()
    agg.publish()
    out = agg.settings.output_dir
    first, second = (out / "index.html").read_text(), (out / "page-2.html").read_text()
    assert not (out / "page-3.html").exists()
    assert len(titles_on(first)) == per_page and titles_on(first)[0] == f"Post number {count - 1}"
    assert titles_on(second) == [f"Post number {n}" for n in (2, 1, 0)]
    assert '<a href="page-2.html">Older posts →</a>' in first
    assert '<a href="index.html">← Newer posts</a>' in second
    assert "<title>Page 2 · Co-production Week 2017</title>" in second
    follow = out / "follow.html"
    assert follow.is_file() and "How to follow Co-production Week 2017" in follow.read_text()
    for page in (out / "index.html", out / "page-2.html", follow):
        assert '<link rel="alternate" type="application/atom+xml"' in page.read_text(), page.name
    # fewer posts: the page past the last one goes
    for n in range(3):
        agg.hide_post(f"https://blog.example/{n}")
    agg.publish()
    assert not (out / "page-2.html").exists()
    again = (out / "index.html").read_text()
    assert len(titles_on(again)) == per_page and "page-2.html" not in again


# ---- excerpts and long words ----


def test_an_embedded_video_is_left_out_of_the_excerpt(agg, web, site):
    video = "https://www.youtube.com/embed/dQw4w9WgXcQ"
    blog(
        agg,
        site,
        "Ann",
        post(
            "Our film",
            rfc822(2017, 7, 5, 8),
            content=f'<p>Before the film.</p><iframe src="{video}"></iframe><p>After it.</p>',
        ),
    )
    agg.update_feeds()
    ((stored,), _more) = agg.posts_page(1, 10)
    assert f"Watch the video: {video}" in stored.text  # the sanitiser's link stands in for it
    agg.publish()
    published = (agg.settings.output_dir / "index.html").read_text()
    for page in (web.get("/").text, published):
        assert "<p>Before the film. After it.</p>" in page
        assert "Watch the video" not in page and "youtube.com" not in page


def test_long_unbroken_words_wrap_instead_of_widening_the_page(agg, web, site):
    long_url = "https://blog.example/" + "a-very-long-path-segment" * 12
    blog(
        agg,
        site,
        "Ann",
        post(
            f"Wrapping {long_url}", rfc822(2017, 7, 5, 8), slug="long", content=f"<p>{long_url}</p>"
        ),
    )
    agg.update_feeds()
    agg.publish()
    published = (agg.settings.output_dir / "index.html").read_text()
    for page in (web.get("/").text, web.get("/search?q=wrapping").text, published):
        assert long_url in page
        assert re.search(r"\bbody\s*\{[^}]*overflow-wrap:\s*anywhere", page)
