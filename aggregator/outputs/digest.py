"""The daily digest: choose the posts, render one email per subscriber, send, record.

Exactly once: the posts of the digest for date D are fixed the first time it is
made (each post carries the date of the one digest that held it). Each
(subscriber, D) has one delivery row, written as "sending" *before* the message
goes to the SMTP server and "sent" after; a rerun skips both, so a crash between
the server's acceptance and the record can never send a second copy (the cost
is that a crash in that window leaves the row "sending" and that subscriber may
miss one digest: at most once, never twice).

A delivery the mail server does not take for now (it cannot be reached, or it answers
"try later") is "queued": its message goes to the outbox in the same transaction, and
the outbox's sender (the worker every minute, or `aggregator outbox`) retries it with
backoff and records the outcome on the delivery, keeping the same rule. An address the
server refuses for good (5xx) is "failed", and retried only by another run for that date.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import quote

from ..config import Settings
from ..errors import DeliveryError
from ..states import DeliveryState
from ..storage import Storage
from ..storage.outbox import digest_kind
from ..storage.posts import PostView
from ..storage.subscribers import SubscriberRow
from ..text import excerpt, one_line
from .files import write_atomic
from .mail import Mailer, failure
from .outbox import letter
from .templating import templates

log = logging.getLogger(__name__)


@dataclass
class DigestReport:
    date: dt.date
    posts: int = 0
    sent: list[str] = field(default_factory=list)
    #: refused for good by the mail server: retried only by another run for this date
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: not taken for now (the server away or busy): in the outbox, retried with backoff
    queued: list[tuple[str, str]] = field(default_factory=list)
    skipped_reason: str | None = None
    #: deliveries a crash interrupted mid-send: not retried, so nobody gets two
    uncertain: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.skipped_reason:
            return f"digest {self.date}: {self.skipped_reason}"
        text = f"digest {self.date}: {self.posts} post(s), sent to {len(self.sent)} subscriber(s)"
        if self.queued:
            text += (
                f", {len(self.queued)} waiting in the outbox ({self.queued[-1][1]}; the "
                "worker or `aggregator outbox` retries them)"
            )
        if self.failed:
            text += f", {len(self.failed)} refused by the mail server (retried on the next run)"
        if self.uncertain:
            text += (
                f", {len(self.uncertain)} interrupted by a crash while sending "
                "(not retried, to avoid a second copy)"
            )
        return text


def subject(settings: Settings, date: dt.date, count: int) -> str:
    plural = "post" if count == 1 else "posts"
    return one_line(f"{settings.event.name}: {count} new {plural} on {date:%-d %B %Y}")


def newest_first(posts: list[PostView]) -> list[PostView]:
    """The site's order (newest first, as `PostStore.page` sorts): the digest shows its
    posts so, whichever order they were chosen in."""
    return sorted(posts, key=lambda p: (p.sort_date, p.id), reverse=True)


def web_url(settings: Settings, date: dt.date) -> str:
    """Where the archived copy of the digest for `date` is served (see `archive`)."""
    return f"{settings.event.site_url}digests/{date.isoformat()}.html"


def render(
    settings: Settings, date: dt.date, posts: list[PostView], unsubscribe_url: str | None
) -> tuple[str, str]:
    """(plain text, HTML) of one digest. With an unsubscribe link it is a subscriber's
    email (with "view this digest on the web"); without one, the web copy, which holds
    nothing personal and says how to subscribe instead."""
    tz = settings.event.tz
    site = settings.event.site_url
    context = {
        "event": settings.event,
        "date": date,
        "posts": newest_first(posts),
        "excerpt": lambda p: excerpt(p.text, 50),
        "local": lambda d: d.astimezone(tz),
        "unsubscribe_url": unsubscribe_url,
        "web_url": web_url(settings, date) if unsubscribe_url else None,
        "site_url": site,
        "feed_url": f"{site}feed.atom",
        "subject": subject(settings, date, len(posts)),
    }
    env = templates()
    return (
        env.get_template("digest.txt").render(context),
        env.get_template("digest.html").render(context),
    )


def unsubscribe_url(settings: Settings, token: str) -> str:
    return f"{settings.event.site_url}unsubscribe/{quote(token)}"


def build_message(
    settings: Settings,
    date: dt.date,
    posts: list[PostView],
    subscriber: SubscriberRow,
    message_id: str,
    now: dt.datetime,
) -> EmailMessage:
    unsubscribe = unsubscribe_url(settings, subscriber.token)
    text, html = render(settings, date, posts, unsubscribe)
    sender_name, sender_addr = parseaddr(settings.digest.sender)
    msg = EmailMessage()
    msg["Subject"] = subject(settings, date, len(posts))
    msg["From"] = Address(display_name=one_line(sender_name), addr_spec=sender_addr)
    msg["To"] = subscriber.email
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    host = sender_addr.rpartition("@")[2] or "localhost"
    msg["List-Id"] = f"{one_line(settings.event.name)} <digest.{host}>"
    msg["List-Unsubscribe"] = f"<{unsubscribe}>, <mailto:{sender_addr}?subject=unsubscribe>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def archive(settings: Settings, date: dt.date, posts: list[PostView]) -> None:
    """Keep the web copy of a sent digest as output/digests/YYYY-MM-DD.html: the same
    posts, but no subscriber's unsubscribe link (anyone can read it)."""
    _text, html = render(settings, date, posts, None)
    write_atomic(settings.output_dir / "digests" / f"{date.isoformat()}.html", html.encode())


def upcoming(storage: Storage, date: dt.date, now: dt.datetime) -> list[PostView]:
    """The posts of the digest for `date`: those it holds once made, else those it would
    hold if made now."""
    return storage.posts.digest_posts(date) or storage.posts.unsent_posts(now)


def preview(storage: Storage, settings: Settings, date: dt.date, now: dt.datetime) -> str:
    """The HTML that would be sent for `date`; changes nothing."""
    posts = upcoming(storage, date, now)
    return render(settings, date, posts, unsubscribe_url(settings, "PREVIEW"))[1]


def send_digest(
    storage: Storage, settings: Settings, date: dt.date, now: dt.datetime
) -> DigestReport:
    report = DigestReport(date)
    subs = storage.subscribers
    if not subs.active():
        # nobody to send to: leave the posts for the first digest that has readers
        report.skipped_reason = "no subscribers yet; nothing sent"
        log.info(report.line())
        return report
    posts = storage.posts.make_digest(date, now, allow_empty=not settings.digest.skip_when_empty)
    if posts is None:
        report.skipped_reason = "no new event posts; nothing sent (digest.skip_when_empty)"
        log.info(report.line())
        return report
    report.posts = len(posts)
    report.uncertain = [
        e for e, status in subs.deliveries(date).items() if status == DeliveryState.SENDING
    ]
    archive(settings, date, posts)
    mailer = Mailer(settings)
    domain = parseaddr(settings.digest.sender)[1].rpartition("@")[2] or None
    #: set once the server cannot be reached: the rest go straight to the outbox
    unreachable: str | None = None
    try:
        for subscriber in subs.awaiting_delivery(date):
            message_id = make_msgid(domain=domain)
            msg = build_message(settings, date, posts, subscriber, message_id, now)
            if not subs.claim_delivery(subscriber.id, date, message_id, now):
                continue  # another worker, or `aggregator digest`, is sending theirs
            reason = unreachable
            if reason is None:
                try:
                    mailer.send(msg)
                except (DeliveryError, OSError, smtplib.SMTPException) as e:
                    failed = failure(e)
                    reason = failed.reason
                    if not isinstance(e, smtplib.SMTPRecipientsRefused):
                        mailer.close()  # a fresh connection for the next message
                    if failed.for_good:
                        subs.mark_delivery(
                            subscriber.id, date, DeliveryState.FAILED, message_id, now, reason
                        )
                        report.failed.append((subscriber.email, reason))
                        continue
                    if failed.server_away:
                        unreachable = reason
                else:
                    subs.mark_delivery(subscriber.id, date, DeliveryState.SENT, message_id, now)
                    report.sent.append(subscriber.email)
                    continue
            # not taken for now: the outbox's sender retries it with backoff
            subs.queue_delivery(subscriber.id, date, letter(digest_kind(date), msg), now, reason)
            report.queued.append((subscriber.email, reason))
    finally:
        mailer.close()
    log.info(report.line())
    return report
