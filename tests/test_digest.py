"""The daily digest over a real SMTP server (aiosmtpd on loopback), and the worker."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

import lxml.html
import pytest
import tinycss2
from lxml import etree
from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.loopback import MailSink
from aggregator.worker import digest_trigger, missed_digest_today

from .conftest import free_port, item, rss, serve_feed, worker_config

TAG = ("Co-production Week",)
READERS = ["ann@example.org", "bob@example.org"]


@pytest.fixture
def mail():
    with MailSink() as sink:
        yield sink


@pytest.fixture
def agg(make_agg, mail):
    a = make_agg(
        digest={
            "smtp_host": "127.0.0.1",
            "smtp_port": mail.port,
            "sender": "Co-production Week <digest@example.org>",
        }
    )
    for reader in READERS:
        a.add_subscriber(reader)
    return a


def received(mail):
    """(recipients, parsed message) for every email the server accepted."""
    return [
        (rcpt, email.message_from_bytes(data, policy=email.policy.default))
        for rcpt, data in mail.messages
    ]


def post_titles(message) -> list[str]:
    text = message.get_body(("plain",)).get_content()
    return [line for line in text.splitlines() if line.startswith("Post ")]


def feed_with(site, *titles_, path="/blog"):
    items = [
        item(t, guid=t, link=f"https://blog.example/{t.replace(' ', '-')}", categories=TAG)
        for t in titles_
    ]
    return serve_feed(site, path, rss(*items))


def test_digests_across_days_hold_each_post_once(agg, site, mail, clock):
    url = feed_with(site, "Post one", "Post two")
    agg.add_contributor("Ann's blog", url, feed=url)
    agg.update_feeds()
    clock.advance(hours=1)
    report = agg.send_digest(dt.date(2017, 7, 5))
    assert (report.posts, sorted(report.sent)) == (2, READERS)
    messages = received(mail)
    assert sorted(r[0] for r, _ in messages) == READERS
    for _rcpt, msg in messages:
        assert msg.get_content_type() == "multipart/alternative"
        assert msg["Subject"] == "Co-production Week 2017: 2 new posts on 5 July 2017"
        assert msg["Message-ID"] and msg["Date"]
        unsubscribe = str(msg["List-Unsubscribe"]).strip()
        assert unsubscribe.startswith("<https://example.org/coproweek/unsubscribe/")
        assert "<mailto:digest@example.org?subject=unsubscribe>" in unsubscribe
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # newest first, as on the site; the same date, so the one stored later comes first
        assert post_titles(msg) == ["Post two", "Post one"]
        html = msg.get_body(("html",)).get_content()
        assert 'href="https://blog.example/Post-one"' in html
    # each subscriber has their own unsubscribe link
    assert len({m["List-Unsubscribe"] for _r, m in messages}) == 2

    # the same date again sends nothing
    again = agg.send_digest(dt.date(2017, 7, 5))
    assert again.sent == [] and len(mail.messages) == 2

    # next day: one new post, and an edit of a post already sent (not sent again)
    feed_with(site, "Post one", "Post two", "Post three")
    clock.advance(days=1)
    agg.update_feeds()
    clock.advance(hours=1)
    agg.send_digest(dt.date(2017, 7, 6))
    day_two = received(mail)[2:]
    assert [post_titles(m) for _r, m in day_two] == [["Post three"], ["Post three"]]
    assert day_two[0][1]["Subject"] == "Co-production Week 2017: 1 new post on 6 July 2017"

    # the archive is on the page
    agg.publish()
    page = (agg.settings.output_dir / "index.html").read_text()
    assert 'href="digests/2017-07-05.html"' in page and 'href="digests/2017-07-06.html"' in page
    assert "Post one" in (agg.settings.output_dir / "digests" / "2017-07-05.html").read_text()


def test_a_late_digest_sends_what_is_unsent_and_empty_days_are_skipped(agg, site, mail, clock):
    assert agg.send_digest(dt.date(2017, 7, 4)).skipped_reason.startswith("no new event posts")
    assert mail.messages == []
    url = feed_with(site, "Post late")
    agg.add_contributor("Blog", url, feed=url)
    agg.update_feeds()
    clock.advance(days=2)
    agg.send_digest(dt.date(2017, 7, 5))  # run two days late
    assert [post_titles(m) for _r, m in received(mail)] == [["Post late"], ["Post late"]]


def test_empty_digest_is_sent_when_configured(make_agg, mail):
    agg = make_agg(
        digest={"smtp_host": "127.0.0.1", "smtp_port": mail.port, "skip_when_empty": False}
    )
    agg.add_subscriber("ann@example.org")
    assert agg.send_digest(dt.date(2017, 7, 5)).sent == ["ann@example.org"]
    assert "0 new posts" in received(mail)[0][1]["Subject"]


class Crash(BaseException):
    """Stands in for the process dying (kill -9, power loss) at a chosen point."""


@pytest.mark.parametrize("crash_on", ["first-recorded", "second-send"])
def test_a_crash_then_a_rerun_gives_exactly_one_email_each(
    agg, site, mail, clock, monkeypatch, crash_on
):
    url = feed_with(site, "Post one")
    agg.add_contributor("Blog", url, feed=url)
    agg.update_feeds()
    clock.advance(hours=1)
    store = agg.storage.subscribers
    real_mark = store.mark_delivery
    calls = []

    def crashing_mark(subscriber_id, date, status, *args, **kwargs):
        calls.append(status)
        if crash_on == "first-recorded" and status == "sent":
            raise Crash  # the server accepted the mail, the record never happened
        if crash_on == "second-send" and calls == ["sending", "sent"]:
            real_mark(subscriber_id, date, status, *args, **kwargs)
            raise Crash  # mid-batch: Ann served and recorded, Bob not yet started
        return real_mark(subscriber_id, date, status, *args, **kwargs)

    real_claim = store.claim_delivery

    def claim(*args, **kwargs):
        calls.append("sending")
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(store, "mark_delivery", crashing_mark)
    monkeypatch.setattr(store, "claim_delivery", claim)
    with pytest.raises(Crash):
        agg.send_digest(dt.date(2017, 7, 5))
    monkeypatch.setattr(store, "mark_delivery", real_mark)
    monkeypatch.setattr(store, "claim_delivery", real_claim)
    agg.send_digest(dt.date(2017, 7, 5))
    agg.send_digest(dt.date(2017, 7, 5))
    # Ann's mail went out before the crash and she is not mailed again; Bob gets his once
    assert sorted(r[0] for r, _m in received(mail)) == READERS


def test_two_runs_making_one_digest_at_once_agree_without_a_crash(agg, site, mail, clock):
    """Seen in CI: `aggregator digest` and a worker made today's digest at the same moment;
    the loser's insert was flushed outside its guard and the command died with a
    traceback. Here the other run commits its digest just before this one writes."""
    from sqlalchemy import event
    from sqlmodel import Session

    url = feed_with(site, "Post one")
    agg.add_contributor("Blog", url, feed=url)
    agg.update_feeds()
    clock.advance(minutes=1)
    day = dt.date(2017, 7, 5)
    other: list = []

    def the_other_run_first(session, flush_context, instances):
        if not other:  # once: the other run's own flush comes here too
            other.append(None)
            other[0] = agg.storage.posts.make_digest(day, clock.now, allow_empty=False)

    event.listen(Session, "before_flush", the_other_run_first)
    try:
        mine = agg.storage.posts.make_digest(day, clock.now, allow_empty=False)
    finally:
        event.remove(Session, "before_flush", the_other_run_first)
    assert [p.title for p in mine] == [p.title for p in other[0]] == ["Post one"]
    report = agg.send_digest(day)
    assert sorted(report.sent) == READERS and len(mail.messages) == 2


def test_a_refused_recipient_is_retried_alone(agg, site, mail, clock):
    url = feed_with(site, "Post one")
    agg.add_contributor("Blog", url, feed=url)
    agg.update_feeds()
    clock.advance(minutes=1)
    mail.refuse.add("bob@example.org")
    first = agg.send_digest(dt.date(2017, 7, 5))
    assert first.sent == ["ann@example.org"]
    assert [e for e, _reason in first.failed] == ["bob@example.org"]
    assert "550" in first.failed[0][1]
    mail.refuse.clear()
    second = agg.send_digest(dt.date(2017, 7, 5))
    assert second.sent == ["bob@example.org"]
    assert sorted(r[0] for r, _m in received(mail)) == READERS


def test_a_digest_made_while_the_mail_server_is_down_arrives_once_it_is_back(make_agg, site, clock):
    port = free_port()  # nothing listens here yet: the mail server is down
    agg = make_agg(digest={"smtp_host": "127.0.0.1", "smtp_port": port})
    for reader in READERS:
        agg.add_subscriber(reader)
    url = feed_with(site, "Post one")
    agg.add_contributor("Blog", url, feed=url)
    agg.update_feeds()
    clock.advance(minutes=1)
    day = dt.date(2017, 7, 5)
    report = agg.send_digest(day)
    # said in one line, and nothing lost: both wait in the outbox
    assert report.sent == [] and [e for e, _why in report.queued] == READERS
    assert f"cannot reach the mail server 127.0.0.1:{port}" in report.line()
    assert "2 waiting in the outbox" in report.line()
    assert agg.storage.subscribers.deliveries(day) == dict.fromkeys(READERS, "queued")
    assert agg.send_digest(day).sent == []  # a rerun leaves them to the outbox
    assert agg.send_outbox().waiting == 2
    with MailSink(port=port) as mail:
        clock.advance(minutes=5)  # past the first retry's backoff
        assert agg.send_outbox().sent == 2
        clock.advance(hours=2)
        agg.send_outbox()
        agg.send_digest(day)
        # each reader got the digest exactly once, and the ledger says so
        assert sorted(r[0] for r, _m in received(mail)) == READERS
    assert agg.storage.subscribers.deliveries(day) == dict.fromkeys(READERS, "sent")
    subjects = {m["Subject"] for _r, m in received(mail)}
    assert subjects == {"Co-production Week 2017: 1 new post on 5 July 2017"}


def test_a_busy_answer_is_retried_from_the_outbox_and_a_refusal_is_not(agg, site, mail, clock):
    url = feed_with(site, "Post one")
    agg.add_contributor("Blog", url, feed=url)
    agg.update_feeds()
    clock.advance(minutes=1)
    mail.busy.add("ann@example.org")  # 451: try again later
    mail.refuse.add("bob@example.org")  # 550: for good
    day = dt.date(2017, 7, 5)
    report = agg.send_digest(day)
    assert [e for e, _why in report.queued] == ["ann@example.org"]
    assert "451" in report.queued[0][1]
    assert [e for e, _why in report.failed] == ["bob@example.org"]
    mail.busy.clear()
    clock.advance(minutes=5)
    assert agg.send_outbox().sent == 1
    assert [r for r, _m in received(mail)] == [["ann@example.org"]]
    assert agg.storage.subscribers.deliveries(day) == {
        "ann@example.org": "sent",
        "bob@example.org": "failed",
    }


def test_a_digest_refused_for_its_content_holds_up_no_other_reader(agg, site, mail, clock):
    """A 554 after the content is sent (a spam filter, or the sender's own set-up) is Ann's
    message's answer alone: Bob's goes out in the same run, and Ann's waits in the outbox
    to be tried again (a sender's set-up can be fixed), going out once it is taken."""
    url = feed_with(site, "Post one")
    agg.add_contributor("Blog", url, feed=url)
    agg.update_feeds()
    clock.advance(minutes=1)
    mail.reject_content["ann@example.org"] = "554 5.7.1 message rejected as spam"
    day = dt.date(2017, 7, 5)
    report = agg.send_digest(day)
    assert report.sent == ["bob@example.org"] and report.failed == []
    assert report.queued == [
        ("ann@example.org", "the mail server: 554 5.7.1 message rejected as spam")
    ]
    assert [r for r, _m in received(mail)] == [["bob@example.org"]]
    mail.reject_content.clear()
    clock.advance(minutes=5)
    assert agg.send_outbox().sent == 1
    assert agg.storage.subscribers.deliveries(day) == dict.fromkeys(READERS, "sent")
    assert sorted(r[0] for r, _m in received(mail)) == READERS


def ann_waits_in_the_outbox(agg, site, mail, clock) -> dt.date:
    """A one-post digest that Bob got and Ann's server put off (451): hers waits in the
    outbox. Returns the digest's date."""
    url = feed_with(site, "Post one")
    agg.add_contributor("Blog", url, feed=url)
    agg.update_feeds()
    clock.advance(minutes=1)
    mail.busy.add("ann@example.org")
    day = dt.date(2017, 7, 5)
    agg.send_digest(day)
    mail.busy.clear()
    return day


def test_a_reader_who_leaves_while_their_digest_waits_does_not_get_it(agg, site, mail, clock):
    """One click means no more digests, also for one waiting in the outbox."""
    day = ann_waits_in_the_outbox(agg, site, mail, clock)
    agg.remove_subscriber("ann@example.org")
    clock.advance(minutes=5)
    assert agg.send_outbox().sent == 0
    assert [r for r, _m in received(mail)] == [["bob@example.org"]]
    assert agg.storage.subscribers.deliveries(day)["ann@example.org"] == "failed"
    assert agg.storage.outbox.due(clock.now + dt.timedelta(days=1)) == []


def test_a_digest_letter_whose_sender_died_is_not_sent_again(agg, site, mail, clock):
    """At most once, from the outbox too: a digest letter taken by a sender that died is
    left "sending" (uncertain) rather than sent a second time when a lease runs out."""
    day = ann_waits_in_the_outbox(agg, site, mail, clock)
    clock.advance(minutes=5)
    (letter,) = agg.storage.outbox.due(clock.now)
    assert agg.storage.outbox.claim(letter, clock.now, dt.timedelta(minutes=10))
    assert agg.storage.subscribers.deliveries(day)["ann@example.org"] == "sending"
    clock.advance(days=2)
    assert agg.send_outbox().sent == 0
    assert agg.send_digest(day).uncertain == ["ann@example.org"]
    assert [r for r, _m in received(mail)] == [["bob@example.org"]]


def test_header_injection_through_a_title_fails(agg, site, mail, clock):
    url = serve_feed(
        site,
        "/evil",
        rss(
            item(
                "Hello&#13;&#10;Bcc: victim@evil.example&#13;&#10;Subject: owned",
                guid="e",
                link="https://evil.example/1",
                categories=TAG,
            ),
            title="Evil&#13;&#10;Bcc: x@evil.example",
        ),
    )
    agg.add_contributor("Evil&#10;Bcc: y@evil.example", url, feed=url)
    agg.update_feeds()
    clock.advance(minutes=1)
    agg.send_digest(dt.date(2017, 7, 5))
    for rcpt, msg in received(mail):
        assert msg["Bcc"] is None
        assert msg["Subject"] == "Co-production Week 2017: 1 new post on 5 July 2017"
        assert rcpt[0] in READERS and len(rcpt) == 1
        assert (
            "Hello Bcc: victim@evil.example Subject: owned"
            in msg.get_body(("plain",)).get_content()
        )


def test_the_latest_version_of_an_edited_post_is_sent(agg, site, mail, clock):
    url = feed_with(site, "Post draft")
    agg.add_contributor("Blog", url, feed=url)
    agg.update_feeds()
    clock.advance(minutes=1)
    serve_feed(
        site,
        "/blog",
        rss(
            item(
                "Post final",
                guid="Post draft",
                link="https://blog.example/Post-draft",
                categories=TAG,
            )
        ),
    )
    clock.advance(hours=1)
    agg.update_feeds(include_not_due=True)
    agg.send_digest(dt.date(2017, 7, 5))
    assert post_titles(received(mail)[0][1]) == ["Post final"]


def test_preview_sends_and_changes_nothing(agg, site, mail, tmp_path, clock):
    url = feed_with(site, "Post one")
    agg.add_contributor("Blog", url, feed=url)
    agg.update_feeds()
    clock.advance(minutes=1)
    preview = agg.preview_digest(tmp_path / "preview.html", dt.date(2017, 7, 5))
    assert "Post one" in preview.read_text()
    # it shows what a subscriber gets, unsubscribe line included (with a stand-in token)
    assert "You get this because you subscribed" in preview.read_text()
    assert 'href="https://example.org/coproweek/unsubscribe/PREVIEW"' in preview.read_text()
    assert mail.messages == [] and agg.storage.posts.digests() == []
    assert agg.send_digest(dt.date(2017, 7, 5)).posts == 1


def test_digest_time_follows_daylight_saving_in_london(agg):
    trigger = digest_trigger(agg)  # 07:30 Europe/London
    london = zoneinfo.ZoneInfo("Europe/London")

    def next_utc(after_utc: dt.datetime) -> dt.datetime:
        return trigger.get_next_fire_time(None, after_utc.astimezone(london)).astimezone(dt.UTC)

    # the night the clocks go forward (26 March 2017) and back (29 October 2017)
    assert next_utc(dt.datetime(2017, 3, 25, 8, 0, tzinfo=dt.UTC)) == dt.datetime(
        2017, 3, 26, 6, 30, tzinfo=dt.UTC
    )
    assert next_utc(dt.datetime(2017, 3, 24, 8, 0, tzinfo=dt.UTC)) == dt.datetime(
        2017, 3, 25, 7, 30, tzinfo=dt.UTC
    )
    assert next_utc(dt.datetime(2017, 10, 28, 7, 0, tzinfo=dt.UTC)) == dt.datetime(
        2017, 10, 29, 7, 30, tzinfo=dt.UTC
    )
    assert next_utc(dt.datetime(2017, 10, 27, 7, 0, tzinfo=dt.UTC)) == dt.datetime(
        2017, 10, 28, 6, 30, tzinfo=dt.UTC
    )


def test_a_digest_missed_today_is_caught_up(agg, site, clock):
    clock.now = dt.datetime(2017, 7, 5, 6, 0, tzinfo=dt.UTC)  # 07:00 in London
    assert not missed_digest_today(agg)
    clock.now = dt.datetime(2017, 7, 5, 6, 45, tzinfo=dt.UTC)  # 07:45: the 07:30 send was missed
    assert missed_digest_today(agg)
    agg.send_digest()
    agg.storage.posts.make_digest(dt.date(2017, 7, 5), clock.now, allow_empty=True)
    assert not missed_digest_today(agg)


def test_subscribers_commands(tmp_path, database_url):
    config = tmp_path / "event.toml"
    config.write_text(
        f'[event]\nname = "E"\n[database]\nurl = "{database_url}"\n'
        f'[publish]\noutput_dir = "{tmp_path / "out"}"\n'
    )
    runner = CliRunner()
    run = lambda *a: runner.invoke(app, ["--config", str(config), *a])  # noqa: E731
    assert run("subscribers", "add", "Ann@Example.org", "bob@example.org").output.splitlines() == [
        "Added Ann@example.org",
        "Added bob@example.org",
    ]
    assert "already subscribed" in run("subscribers", "add", "Ann@example.org").output
    bad = run("subscribers", "add", "not-an-address")
    assert bad.exit_code == 1 and "is not a valid email address" in bad.output
    assert run("subscribers", "remove", "bob@example.org").exit_code == 0
    listed = run("subscribers", "list").output
    assert "Ann@example.org" in listed and "unsubscribed" in listed
    assert "1 of 2 get the digest." in listed


def test_run_polls_publishes_and_stops_on_sigterm(tmp_path, site):
    url = feed_with(site, "Post from the worker")
    config = worker_config(tmp_path, url)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    feed = tmp_path / "out" / "feed.atom"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if feed.exists() and b"Post from the worker" in feed.read_bytes():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    assert b"Post from the worker" in feed.read_bytes(), output
    assert proc.returncode == 0, output
    assert "poll: feeds: 1 fetched" in output
    assert "worker stopped" in output
    assert "Traceback" not in output


def test_without_subscribers_the_posts_wait_for_the_first_reader(make_agg, site, mail, clock):
    agg = make_agg(digest={"smtp_host": "127.0.0.1", "smtp_port": mail.port})
    url = feed_with(site, "Post early")
    agg.add_contributor("Blog", url, feed=url)
    agg.update_feeds()
    clock.advance(minutes=1)
    assert agg.send_digest(dt.date(2017, 7, 5)).skipped_reason == "no subscribers yet; nothing sent"
    agg.add_subscriber("first@example.org")
    clock.advance(days=1)
    agg.send_digest(dt.date(2017, 7, 6))
    assert [post_titles(m) for _r, m in received(mail)] == [["Post early"]]


# ---- the email as mail clients and readers see it ----

SITE = "https://example.org/coproweek/"
WEB_COPY = f"{SITE}digests/2017-07-05.html"
NEWEST_FIRST = ["Post newest", "Post middle", "Post oldest"]


def send_three_posts(agg, site, clock) -> None:
    """The digest of 5 July with three posts, listed in the feed out of date order."""
    dates = {
        "Post middle": "Tue, 04 Jul 2017 08:00:00 +0000",
        "Post newest": "Wed, 05 Jul 2017 07:00:00 +0000",
        "Post oldest": "Mon, 03 Jul 2017 08:00:00 +0000",
    }
    items = [
        item(
            title,
            guid=title,
            link=f"https://blog.example/{title.replace(' ', '-')}",
            date=date,
            categories=TAG,
            content=f"<p>Some words about the week ({title.lower()}).</p>",
        )
        for title, date in dates.items()
    ]
    url = serve_feed(site, "/blog", rss(*items))
    agg.add_contributor("Ann's blog", url, feed=url)
    agg.update_feeds()
    clock.advance(hours=1)
    assert agg.send_digest(dt.date(2017, 7, 5)).posts == 3


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


def web_copy(agg) -> str:
    return (agg.settings.output_dir / "digests" / "2017-07-05.html").read_text()


def links(html: str) -> dict[str, str]:
    """Each link's words (as a reader sees them) and where it goes."""
    doc = lxml.html.document_fromstring(html)
    return {" ".join(a.text_content().split()): a.get("href") for a in doc.iter("a")}


def headings(html: str) -> list[str]:
    return [h.text_content().strip() for h in lxml.html.document_fromstring(html).iter("h2")]


def test_the_email_links_to_its_web_copy_the_site_and_the_feed_newest_first(agg, site, mail, clock):
    send_three_posts(agg, site, clock)
    messages = received(mail)
    assert len(messages) == 2
    for _rcpt, msg in messages:
        lines = msg.get_body(("plain",)).get_content().splitlines()
        assert f"View this digest on the web: {WEB_COPY}" in lines
        assert f"Every post is also on the Co-production Week 2017 site: {SITE}" in lines
        assert f"and in its feed, for feed readers: {SITE}feed.atom" in lines
        assert post_titles(msg) == NEWEST_FIRST

        html = html_of(msg)
        found = links(html)
        assert found["View this digest on the web"] == WEB_COPY
        assert found["the Co-production Week 2017 site"] == SITE
        assert found["its feed"] == f"{SITE}feed.atom"
        unsubscribe = re.search(r"<(https://[^>]+)>", str(msg["List-Unsubscribe"])).group(1)
        assert found["Unsubscribe"] == unsubscribe
        assert headings(html) == NEWEST_FIRST
        assert found["Post newest"] == "https://blog.example/Post-newest"
    # the link leads to the copy the site serves at that address
    assert (agg.settings.output_dir / WEB_COPY.removeprefix(SITE)).is_file()


def test_the_web_copy_holds_nothing_personal_and_says_how_to_subscribe(
    agg, site, mail, clock, tmp_path
):
    send_three_posts(agg, site, clock)
    copy = web_copy(agg)
    assert headings(copy) == NEWEST_FIRST
    assert "unsubscribe" not in copy.lower()
    assert "You get this because" not in copy
    for subscriber in agg.storage.subscribers.all():
        assert subscriber.email not in copy and subscriber.token not in copy
    found = links(copy)
    assert found["the site's front page"] == SITE
    assert "To get the Co-production Week 2017 digest by email each day, subscribe" in copy
    assert found["its feed"] == f"{SITE}feed.atom"
    assert "View this digest on the web" not in found  # it is that page
    # while each email keeps its own unsubscribe line
    for _rcpt, msg in received(mail):
        assert "You get this because you subscribed" in html_of(msg)


# ---- CSS that mail clients drop ----
#
# What the email's layout may not rest on, from caniemail.com (the feature pages named in
# brackets: caniemail.com/features/<name>/, data in github.com/hteumeuleu/caniemail):
#
# - display:flex / inline-flex (css-display-flex: Outlook for Windows 2007-2019 and
#   Windows Mail no; Gmail not with non-Gmail accounts) and display:grid / inline-grid
#   (css-display-grid: Gmail, Outlook for Windows, Yahoo, AOL no), with the properties that
#   only work inside them (flex-*, grid-*, gap, justify-*, align-*, place-*, order:
#   css-flex-direction, css-flex-wrap, css-gap, css-justify-content, css-align-items);
# - position (css-position: Gmail and Outlook for Windows drop it), and so top, right,
#   bottom, left, inset and z-index (css-left-right-top-bottom, css-inset);
# - float and clear (css-float: Outlook for Windows ignores it; `align=` does the job);
# - max-width anywhere but on a <table>, and on a table only when an Outlook-only
#   (`<!--[if mso]>`) table of a fixed pixel width holds it (css-max-width: Outlook for
#   Windows 2007-2016 ignore it, 2019 only honours it on tables): otherwise Outlook shows
#   the column as wide as the window;
# - margin:auto (css-margin: Outlook for Windows ignores `auto`; centring is `align=`)
#   and negative margins (css-margin: Gmail and Outlook drop them);
# - custom properties and var() (css-variables: Gmail, Outlook, Yahoo, AOL no); min(),
#   max() and clamp() (css-function-min, -max, -clamp: Outlook on every platform, Yahoo and
#   AOL no), and calc(), which Outlook for Windows' Word engine does not know either: a
#   client that does not know a value drops the whole declaration;
# - @import and @font-face (css-at-import, css-at-font-face: Gmail and Outlook drop them;
#   the README promises no web fonts);
# - <main>, <nav>, <details>, <summary> (html-semantics: Gmail turns them into <u>);
#   the landmark is role="main" on a div (html-role: kept by Gmail and Outlook).
#
# Only the dark-mode block, `@media (prefers-color-scheme: dark)`, is exempt: it is an
# extra for the clients that honour it, and the email reads the same without it.

_GRID_OR_FLEX = re.compile(
    r"^(flex|flex-.*|grid|grid-.*|gap|row-gap|column-gap|justify-.*|align-.*|place-.*|order)$"
)
_POSITIONED = {"position", "top", "right", "bottom", "left", "inset", "z-index", "float", "clear"}
_DROPPED_FUNCTIONS = {"var", "calc", "min", "max", "clamp"}
_DROPPED_ELEMENTS = {"main", "nav", "details", "summary"}


def _functions(tokens):
    for token in tokens:
        if token.type == "function":
            yield token.lower_name
            yield from _functions(token.arguments)
        elif token.type in ("() block", "[] block", "{} block"):
            yield from _functions(token.content)


def _declaration_problems(css: str, where: str, tag: str | None, outlook_width: bool):
    problems = []
    for node in tinycss2.parse_blocks_contents(css, skip_comments=True, skip_whitespace=True):
        if node.type == "error":
            problems.append(f"{where}: unreadable CSS ({node.message})")
            continue
        if node.type != "declaration":
            problems.append(f"{where}: nested rule {tinycss2.serialize([node])!r}")
            continue
        name = node.lower_name
        values = [t for t in node.value if t.type not in ("whitespace", "comment")]
        idents = {t.lower_value for t in values if t.type == "ident"}
        said = f"{where}: {name}: {tinycss2.serialize(node.value).strip()}"
        if name.startswith("--"):
            problems.append(f"{said} (custom property)")
        if name == "display" and idents & {"flex", "inline-flex", "grid", "inline-grid"}:
            problems.append(said)
        if _GRID_OR_FLEX.match(name) or name in _POSITIONED:
            problems.append(said)
        if name == "max-width" and (tag != "table" or not outlook_width):
            problems.append(f"{said} (only on a table that an Outlook fixed-width table holds)")
        if name.startswith("margin") and (
            "auto" in idents
            or any(t.type in ("number", "dimension", "percentage") and t.value < 0 for t in values)
        ):
            problems.append(f"{said} (auto or negative margin)")
        if dropped := _DROPPED_FUNCTIONS & set(_functions(node.value)):
            problems.append(f"{said} ({', '.join(sorted(dropped))}())")
    return problems


def _is_dark_mode(rule) -> bool:
    prelude = "".join(tinycss2.serialize(rule.prelude).lower().split())
    return rule.lower_at_keyword == "media" and "(prefers-color-scheme:dark)" in prelude


def _stylesheet_problems(rules, outlook_width: bool):
    problems = []
    for rule in rules:
        if rule.type == "qualified-rule":
            where = f"<style> {tinycss2.serialize(rule.prelude).strip()}"
            problems += _declaration_problems(
                tinycss2.serialize(rule.content), where, None, outlook_width
            )
        elif rule.type == "at-rule" and _is_dark_mode(rule):
            continue  # the progressive extra: dark colours where a client honours them
        elif rule.type == "at-rule" and rule.lower_at_keyword == "media":
            problems += _stylesheet_problems(
                tinycss2.parse_rule_list(rule.content, skip_comments=True, skip_whitespace=True),
                outlook_width,
            )
        elif rule.type == "at-rule":
            problems.append(f"<style>: @{rule.lower_at_keyword} (dropped by mail clients)")
        elif rule.type == "error":
            problems.append(f"<style>: unreadable CSS ({rule.message})")
    return problems


def css_mail_clients_drop(html: str) -> list[str]:
    """Where the digest's layout would rest on CSS that major mail clients drop (the list
    above): each inline style attribute and the <style> block outside its dark-mode
    @media block, read with a CSS parser (tinycss2) from the HTML parsed by lxml."""
    doc = lxml.html.document_fromstring(html)
    outlook_tables = [
        c.text
        for c in doc.iter(etree.Comment)
        if "[if mso]" in (c.text or "") and re.search(r'<table\b[^>]*\bwidth="\d+"', c.text)
    ]
    outlook_width = bool(outlook_tables)
    problems = [f"<{e.tag}> (Gmail rewrites it)" for e in doc.iter(*_DROPPED_ELEMENTS)]
    for element in doc.iter(etree.Element):
        if element.get("style"):
            where = f"<{element.tag} style>"
            problems += _declaration_problems(
                element.get("style"), where, element.tag, outlook_width
            )
    for style in doc.iter("style"):
        rules = tinycss2.parse_stylesheet(
            style.text or "", skip_comments=True, skip_whitespace=True
        )
        problems += _stylesheet_problems(rules, outlook_width)
    return problems


def test_css_mail_clients_drop_is_found():
    """The check itself: each kind of dropped CSS is caught, the dark block is not."""
    page = """<html><head><style>
      .a { display: flex; gap: 4px }  @import url(x.css);
      @media (max-width: 600px) { .b { width: calc(100% - 2px) } }
      @media (prefers-color-scheme: dark) { .c { position: absolute; color: var(--x) } }
    </style></head><body><main>
      <div style="max-width:600px;margin:0 auto">x</div>
      <table style="max-width:600px"><tr><td style="float:left;margin-top:-4px">y</td></tr></table>
      <p style="--brand:red;color:var(--brand);display:grid;position:relative;top:2px">z</p>
    </main></body></html>"""
    found = "\n".join(css_mail_clients_drop(page))
    for expected in (
        "<main> (Gmail",
        ".a: display: flex",
        ".a: gap",
        "@import",
        ".b: width: calc(100% - 2px) (calc())",
        "<div style>: max-width",
        "<div style>: margin: 0 auto (auto",
        "<table style>: max-width",  # no Outlook fixed-width table holds it
        "<td style>: float",
        "<td style>: margin-top: -4px",
        "<p style>: --brand",
        "<p style>: color: var(--brand) (var())",
        "<p style>: display: grid",
        "<p style>: position",
        "<p style>: top",
    ):
        assert expected in found, expected
    assert ".c" not in found  # the dark-mode extra is exempt
    ghost = '<!--[if mso]><table role="presentation" width="600"><tr><td><![endif]-->'
    assert (
        css_mail_clients_drop(
            f'<html><body>{ghost}<table style="max-width:600px"><tr><td>x</td></tr></table>'
            "<!--[if mso]></td></tr></table><![endif]--></body></html>"
        )
        == []
    )


def test_the_layout_rests_on_nothing_mail_clients_drop(agg, site, mail, clock):
    send_three_posts(agg, site, clock)
    for page in (html_of(received(mail)[0][1]), web_copy(agg)):
        assert css_mail_clients_drop(page) == []
        doc = lxml.html.document_fromstring(page)
        # the layout is tables, which screen readers are told to read as plain content,
        # 600px wide in Outlook for Windows
        assert {t.get("role") for t in doc.iter("table")} == {"presentation"}
        assert any('width="600"' in (c.text or "") for c in doc.iter(etree.Comment))
        assert doc.get("lang") == "en" and doc.findtext(".//title").startswith("Co-production")
        # dark mode: the media query overrides the inline colours of classed elements
        style = doc.findtext(".//style")
        assert "color-scheme: light dark" in style and "prefers-color-scheme: dark" in style
        meta = {m.get("name"): m.get("content") for m in doc.iter("meta") if m.get("name")}
        assert meta["color-scheme"] == "light dark"
        assert meta["supported-color-schemes"] == "light dark"


# ---- in a browser: axe-core, and screenshots ----

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "screenshots"


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="no Chromium here (.ci/run installs Debian's chromium)"
)
def test_the_email_and_its_web_copy_pass_axe_at_desktop_and_phone_widths(agg, site, mail, clock):
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    send_three_posts(agg, site, clock)
    pages = {"digest": html_of(received(mail)[0][1]), "digest-web-copy": web_copy(agg)}
    axe = Axe()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for name, html in pages.items():
                for width, scheme in ((1280, "light"), (375, "light"), (375, "dark")):
                    page = browser.new_page(viewport={"width": width, "height": 800})
                    page.emulate_media(color_scheme=scheme)
                    page.set_content(html)
                    # every rule axe has, not only its default set: WCAG A, AA and AAA,
                    # best practices, experimental ones; none needs turning off for an email
                    page.evaluate(axe.axe_script)
                    every_rule = page.evaluate("axe.getRules().map(rule => rule.ruleId)")
                    options = {
                        "runOnly": {"type": "rule", "values": every_rule},
                        "resultTypes": ["violations"],
                    }
                    results = axe.run(page, options=options)
                    assert results.violations_count == 0, (
                        f"{name} at {width}px, {scheme}:\n{results.generate_report()}"
                    )
                    # the column is 600px on a desktop, the screen less 12px a side on a phone
                    card = page.locator("table.dm-card").bounding_box()
                    assert card["width"] == (600 if width == 1280 else width - 24)
                    assert page.evaluate("document.documentElement.scrollWidth") <= width
                    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
                    assert background == (
                        "rgb(18, 18, 18)" if scheme == "dark" else "rgb(244, 244, 244)"
                    )
                    if name == "digest":
                        suffix = "-dark" if scheme == "dark" else ""
                        page.screenshot(
                            path=str(SCREENSHOTS / f"digest-{width}{suffix}.png"), full_page=True
                        )
                    page.close()
        finally:
            browser.close()
