"""Sending what waits in the outbox: one SMTP connection a batch, each message once.

A message is marked sent as soon as the server has taken it. When the server cannot be
reached the batch stops and every message waits for the next run, retried with a
growing delay (a minute, two, four, … at most an hour); a server that refuses one
recipient or one message's content fails that message alone, and the batch goes on (a
recipient refused with a 5xx is given up at once; see `mail.failure`).
After `MAX_ATTEMPTS` (about 14 hours of trying) a message is given up, with the reason
kept and shown by `aggregator outbox`. Each letter is claimed before it is sent, so
senders running at once never send it twice.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage

from ..config import Settings
from ..errors import DeliveryError
from ..storage.outbox import Letter, OutboxStore
from .mail import Mailer, failure

MAX_ATTEMPTS = 20
MAX_DELAY = dt.timedelta(hours=1)
#: how long a sender holds a letter it took; a sender that dies lets it go after this
LEASE = dt.timedelta(minutes=10)


@dataclass
class OutboxReport:
    sent: int = 0
    failed: list[str] = field(default_factory=list)
    waiting: int = 0

    def line(self) -> str:
        text = f"outbox: {self.sent} sent, {self.waiting} waiting"
        return text + (f"; {self.failed[-1]}" if self.failed else "")


def letter(kind: str, message: EmailMessage) -> Letter:
    # SMTPUTF8 keeps an internationalised address whole (the SMTP policy would encode it
    # into something that is no address); smtplib asks the server for SMTPUTF8 when needed
    return Letter(kind, str(message["To"]), message.as_bytes(policy=email.policy.SMTPUTF8))


def retry_delay(attempts: int) -> dt.timedelta:
    """After the n-th failed attempt: 1, 2, 4 … minutes, at most an hour."""
    return min(dt.timedelta(minutes=2 ** max(0, attempts - 1)), MAX_DELAY)


def send_due(store: OutboxStore, settings: Settings, now: dt.datetime) -> OutboxReport:
    report = OutboxReport()
    mailer = Mailer(settings)
    try:
        for row in store.due(now):
            if not store.claim(row, now, LEASE):
                continue  # another sender took it
            msg = email.message_from_bytes(row.message, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            try:
                mailer.send(msg)
            except (DeliveryError, OSError, smtplib.SMTPException) as e:
                failed = failure(e)
                attempts = row.attempts + 1
                retry_at = (
                    now + retry_delay(attempts)
                    if attempts < MAX_ATTEMPTS and not failed.for_good
                    else None
                )
                store.failed(row.id, failed.reason, retry_at, now)
                report.failed.append(f"{row.recipient}: {failed.reason}")
                mailer.close()
                if failed.server_away:
                    break  # the server is not taking mail: the rest wait for the next run
                continue
            store.sent(row.id, now)
            report.sent += 1
    finally:
        mailer.close()
    report.waiting = store.waiting()
    return report
