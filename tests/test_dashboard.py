"""The organisers' dashboard as an organiser uses it: problems first and in plain words,
labelled buttons, a second step before what cannot be undone, results shown where the
organiser acted, and the picture of the week (charts with their numbers as text)."""
# ruff: noqa: F811

from __future__ import annotations

import html
import re

from aggregator import health
from aggregator.loopback import Response

from .conftest import item, rss, serve_feed

# the web app's fixtures (agg with a loopback mail server, web) are test_web's; tests
# naming them as arguments is how pytest uses them, not a redefinition
from .test_web import TAG, agg, csrf, login, mail, web  # noqa: F401


def text_of(page: str) -> str:
    """The page's words as a reader sees them (tags dropped, spaces folded)."""
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", page).split()))


def section(page: str, name: str) -> str:
    found = re.search(rf'<section id="{name}".*?</section>', page, re.S)
    assert found, name
    return found.group(0)


def a_week(agg, site):
    """Two contributors who post, one whose server fails, one with nothing tagged yet."""
    for name in ("Bea", "Cy"):
        url = serve_feed(
            site,
            f"/{name}/feed",
            rss(
                item(
                    f"{name}'s event post",
                    guid=name,
                    link=f"https://{name}.example/1",
                    categories=TAG,
                ),
                title=f"{name}'s blog",
            ),
        )
        agg.add_contributor(name, url, feed=url)
    down = serve_feed(site, "/fran/feed", rss(item("Early", guid="e", categories=TAG)))
    agg.add_contributor("Fran", down, feed=down)
    quiet = serve_feed(site, "/quentin/feed", rss(item("Holiday snaps", guid="q")))
    agg.add_contributor("Quentin", quiet, feed=quiet)
    site.routes["/fran/feed"] = Response(b"oops", status=500, content_type="text/plain")
    agg.update_feeds(include_not_due=True)
    return down


def test_problems_come_first_in_plain_words_with_the_raw_reason_behind_a_disclosure(agg, web, site):
    down = a_week(agg, site)
    login(web, agg)
    page = web.get("/admin").text
    attention = section(page, "attention")
    words = text_of(attention)
    assert "Needs attention (2)" in words
    # the failing feed: a sentence saying what it means, the server's words behind <details>
    assert "Fran Failing The blog's server is having trouble." in words
    assert "<details><summary>What the feed said" in attention
    assert "server error (500)" in attention
    assert down in attention
    # the contributor whose feed reads but carries nothing for the event
    assert "Quentin Nothing tagged yet" in words
    assert "no post labelled Co-production Week yet" in words
    # the ones that are fine are not there; the top sums it up
    assert "Bea" not in words and "Cy" not in words
    assert "3 of 4 feeds read fine" in text_of(page)
    assert text_of(page).index("Needs attention (2)") < text_of(page).index("All feeds (4)")


def test_every_button_says_what_it_acts_on(agg, web, site):
    a_week(agg, site)
    login(web, agg)
    page = web.get("/admin").text
    names = {
        text_of(b)
        for b in re.findall(r"<button[^>]*>(.*?)</button>", page, re.S)
        if "Log out" not in b
    }
    for expected in (
        "Pause the feed of Fran",
        "Remove… the contributor Quentin and their posts",
        "Hide “Bea's event post”",
        "Send today's digest…",
    ):
        assert expected in names, expected
    # within each part of the page, no two buttons read the same to a screen reader
    for part in ("attention", "feeds", "posts", "registrations"):
        found = re.findall(r"<button[^>]*>(.*?)</button>", section(page, part), re.S)
        labels = [text_of(b) for b in found]
        assert len(labels) == len(set(labels)), part


def test_removing_a_contributor_asks_first_and_says_what_goes(agg, web, site):
    a_week(agg, site)
    login(web, agg)
    token = csrf(web, "/admin")
    asked = web.post("/admin/remove", data={"csrf": token, "name": "Bea", "back": "feeds"})
    words = text_of(asked.text)
    assert "Remove Bea?" in words
    assert "their feeds and their 1 post from the site" in words
    assert "Bea" in [c.name for c in agg.contributors()]  # nothing removed yet
    assert 'href="/admin#feeds"' in asked.text  # the way back keeps the organiser's place
    done = web.post(
        "/admin/remove", data={"csrf": token, "name": "Bea", "back": "feeds", "confirmed": "yes"}
    )
    assert "Bea" not in [c.name for c in agg.contributors()]
    assert str(done.url).endswith("/admin#result")
    # gone from the outputs at once, and from the public page its next visitor sees
    index = (agg.settings.output_dir / "index.html").read_text()
    assert "Bea&#39;s event post" not in index and "Cy&#39;s event post" in index
    web.post("/admin/logout", data={"csrf": token})
    assert "Bea&#39;s event post" not in web.get("/").text
    # the result is announced inside the part of the page the organiser acted in
    feeds = section(done.text, "feeds")
    assert re.search(r'<p id="result" class="flash" role="status" tabindex="-1">Removed Bea', feeds)
    assert 'id="result"' not in section(done.text, "today")


def test_a_failed_action_is_shown_where_it_was_taken_as_an_error(agg, web, site):
    a_week(agg, site)
    login(web, agg)
    token = csrf(web, "/admin")
    answer = web.post("/admin/hide", data={"csrf": token, "back": "posts"})
    posts = section(answer.text, "posts")
    assert '<p id="result" class="error" role="status"' in posts
    assert "Could not do that: the form is missing" in posts
    # an unknown place falls back to the top of the page, never into the markup
    answer = web.post("/admin/hide", data={"csrf": token, "back": '"><script>'})
    assert "<script>" not in answer.text and 'id="result"' in answer.text


def test_times_are_in_the_event_zone_and_relative(agg, web, site, clock):
    a_week(agg, site)
    clock.advance(hours=2)
    login(web, agg)
    feeds = section(web.get("/admin").text, "feeds")
    assert ">2 hours ago</time>" in feeds
    local = clock.now.astimezone(agg.settings.event.tz)
    assert local.tzname() in feeds  # the zone is named beside the time


def test_the_picture_of_the_week_draws_charts_with_their_numbers_as_text(agg, web, site):
    a_week(agg, site)
    agg.add_subscriber("reader@example.org")
    login(web, agg)
    week = section(web.get("/admin").text, "week")
    assert week.count('role="img"') == 4
    words = text_of(week)
    for title in (
        "Posts per day",
        "Subscribers getting the digest",
        "Digest deliveries",
        "Contributors who have posted",
    ):
        assert title in words
    picture = agg.week_picture()
    posted = sum(n for _day, n in picture.posts_per_day)
    assert posted == 2
    assert f"{posted} posts over" in words
    assert "2 of 4 contributors have a post in the feed." in words
    assert "Not posted yet (2)" in words and "Fran" in words and "Quentin" in words
    # the bars' numbers are in a table too, one row a day
    assert week.count("<tr><td>") >= len(picture.posts_per_day)
    assert "1 subscriber now" in words


def test_attention_puts_the_worst_first_and_skips_paused_feeds():
    def feed(name, state, reason="", errors=0, posts=0, wait=False):
        return health.FeedHealth(
            contributor=name,
            url=f"https://{name}.example/feed",
            kind=health.FeedKind.MAIN,
            state=state,
            reason=reason,
            last_fetched_at=None,
            error_count=errors,
            next_try=None,
            posts=posts,
            told_to_wait=wait,
        )

    S = health.FeedState
    rows = [
        feed("note", S.OK, "the feed is not well-formed XML (line 1); what could be read", posts=1),
        feed("quiet", S.NOT_MODIFIED),
        feed(
            "slow",
            S.FAILING,
            "too many requests (429: the server asks us to slow down)",
            1,
            0,
            True,
        ),
        feed("paused", S.PAUSED, posts=0),
        feed("broken", S.FAILING, "cannot find the server x.example (DNS lookup failed)", 1),
        # a wrong address failing for days is the organiser's job, not something to wait out
        feed("moved", S.FAILING, "not found (404: the feed address is wrong or …)", 40),
    ]
    found = health.attention(rows, "Co-production Week")
    assert [(a.health.contributor, a.concern) for a in found] == [
        ("broken", health.Concern.FAILING),
        ("moved", health.Concern.FAILING),
        ("slow", health.Concern.BACKING_OFF),
        ("quiet", health.Concern.SILENT),
        ("note", health.Concern.NOTE),
    ]
    assert found[0].sentence.startswith("No website has this address any more. Ask broken")
    assert found[1].sentence.startswith("There is no feed at this address any more")
    assert found[2].sentence.startswith("The blog's server asked us to slow down")
    assert found[4].detail.startswith("the feed is not well-formed XML")


def test_a_tag_keeps_the_hyphens_it_was_written_with(agg, web, site):
    """Seen in the public page's screenshot: "Co-production Week" showed as "Co production
    Week" because every dash was read as a slug's."""
    from aggregator.text import readable_tag

    assert readable_tag("Co-production Week") == "Co-production Week"
    assert readable_tag("co-production-week") == "co production week"
    assert readable_tag("#Meetings") == "Meetings"
    assert readable_tag("carers_voices") == "carers voices"
    a_week(agg, site)
    assert 'href="/?tag=coproductionweek">Co-production Week</a>' in web.get("/").text
