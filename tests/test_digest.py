"""The daily digest over a real SMTP server (aiosmtpd on loopback), and the worker."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import signal
import subprocess
import sys
import time
import zoneinfo

import pytest
from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.loopback import MailSink
from aggregator.worker import digest_trigger, missed_digest_today

from .conftest import item, rss, serve_feed, worker_config

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
        assert post_titles(msg) == ["Post one", "Post two"]
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


def test_smtp_down_is_a_clear_error_and_retried(make_agg, site, clock):
    agg = make_agg(digest={"smtp_host": "127.0.0.1", "smtp_port": 1})
    agg.add_subscriber("ann@example.org")
    url = feed_with(site, "Post one")
    agg.add_contributor("Blog", url, feed=url)
    agg.update_feeds()
    clock.advance(minutes=1)
    from aggregator.errors import DeliveryError

    with pytest.raises(DeliveryError, match=r"cannot reach the mail server 127\.0\.0\.1:1"):
        agg.send_digest(dt.date(2017, 7, 5))
    assert agg.storage.subscribers.deliveries(dt.date(2017, 7, 5)) == {"ann@example.org": "failed"}


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
