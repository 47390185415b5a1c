"""Emails waiting to go out, and the record of each attempt."""

from __future__ import annotations

import datetime as dt
import email.policy
from dataclasses import dataclass
from email.parser import BytesHeaderParser

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from ..states import DeliveryState
from .models import Delivery, Meta, Outbox, Subscriber


@dataclass(frozen=True)
class OutboxRow:
    id: int
    kind: str
    recipient: str
    message: bytes
    attempts: int

    @classmethod
    def from_model(cls, row: Outbox) -> OutboxRow:
        return cls(row.id or 0, row.kind, row.recipient, row.message, row.attempts)


#: a digest letter's kind names its date: "digest 2017-05-16"
_DIGEST = "digest "
#: a digest letter taken for sending is never taken again by the lease running out: a
#: sender that dies holding it leaves its delivery "sending" (uncertain), so nobody gets
#: two (the digest's at-most-once rule, see outputs/digest.py)
_HELD_FOR_GOOD = dt.timedelta(days=3650)


def digest_kind(date: dt.date) -> str:
    return f"{_DIGEST}{date.isoformat()}"


def _digest_date(kind: str) -> dt.date | None:
    if not kind.startswith(_DIGEST):
        return None
    return dt.date.fromisoformat(kind.removeprefix(_DIGEST))


def _delivery_of(row: Outbox) -> tuple[dt.date, str] | None:
    """(digest date, Message-ID) of a digest letter: its delivery row carries the same
    Message-ID (set when it was claimed), whatever the To header's spelling."""
    date = _digest_date(row.kind)
    if date is None:
        return None
    message_id = BytesHeaderParser(policy=email.policy.default).parsebytes(row.message)[
        "Message-ID"
    ]
    return date, str(message_id or "").strip()


def _record_delivery(
    session: Session, row: Outbox, status: str, now: dt.datetime, error: str | None = None
) -> None:
    """Keep a digest letter's delivery row in step with the letter (same transaction)."""
    found = _delivery_of(row)
    if found is None:
        return
    date, message_id = found
    session.execute(
        update(Delivery)
        .where(col(Delivery.digest_date) == date, col(Delivery.message_id) == message_id)
        .values(status=status, updated_at=now, error=error)
    )


def _reader_has_left(session: Session, row: Outbox) -> bool:
    """A digest letter whose subscriber unsubscribed (or was removed) since it was queued."""
    found = _delivery_of(row)
    if found is None:
        return False
    date, message_id = found
    still = session.exec(
        select(Subscriber.id)
        .join(Delivery, col(Delivery.subscriber_id) == Subscriber.id)
        .where(
            col(Delivery.digest_date) == date,
            col(Delivery.message_id) == message_id,
            col(Subscriber.confirmed).is_(True),
            col(Subscriber.unsubscribed_at).is_(None),
        )
    ).first()
    return still is None


@dataclass(frozen=True)
class Letter:
    """One email to queue."""

    kind: str
    recipient: str
    message: bytes


def queue(session: Session, letters: list[Letter], now: dt.datetime) -> None:
    """Add letters to the outbox inside the caller's transaction."""
    for letter in letters:
        session.add(
            Outbox(
                kind=letter.kind,
                recipient=letter.recipient,
                message=letter.message,
                created_at=now,
                next_attempt_at=now,
            )
        )


def waiting_for(session: Session, kind: str, recipient: str) -> bool:
    """Whether a letter of this kind to this recipient is still waiting to go out."""
    found = session.exec(
        select(Outbox.id).where(
            Outbox.kind == kind,
            Outbox.recipient == recipient,
            col(Outbox.sent_at).is_(None),
            col(Outbox.given_up).is_(False),
        )
    ).first()
    return found is not None


class OutboxStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def add(
        self, letters: list[Letter], now: dt.datetime, *, mark: tuple[str, str] | None = None
    ) -> bool:
        """Queue letters and return True; with `mark`, only if that meta key does not
        hold that value yet, setting it in the same transaction (so a daily alert is
        queued once, however many workers try at once), else queue nothing: False."""
        with Session(self.engine) as session:
            if mark is not None:
                key, value = mark
                changed = session.execute(
                    update(Meta)
                    .where(col(Meta.key) == key, col(Meta.value) != value)
                    .values(value=value)
                ).rowcount  # type: ignore[attr-defined]
                if not changed:
                    if session.get(Meta, key) is not None:
                        return False  # marked already (by another worker, maybe just now)
                    session.add(Meta(key=key, value=value))
            queue(session, letters, now)
            try:
                session.commit()
            except IntegrityError:  # another worker inserted the mark first
                session.rollback()
                return False
            return True

    def due(self, now: dt.datetime, limit: int = 200) -> list[OutboxRow]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(Outbox)
                .where(
                    col(Outbox.sent_at).is_(None),
                    col(Outbox.given_up).is_(False),
                    col(Outbox.next_attempt_at) <= now,
                )
                .order_by(col(Outbox.id))
                .limit(limit)
            ).all()
            return [OutboxRow.from_model(r) for r in rows]

    def claim(self, letter: OutboxRow, now: dt.datetime, lease: dt.timedelta) -> bool:
        """Take a due letter for sending: True for one sender only, however many run at
        once (the web app's background task, the worker, `aggregator outbox`). A sender
        that dies holding it lets the lease run out, and the letter is due again; a
        digest letter is never due again that way (its delivery stays "sending")."""
        digest = _digest_date(letter.kind) is not None
        with Session(self.engine) as session:
            taken = session.execute(
                update(Outbox)
                .where(
                    col(Outbox.id) == letter.id,
                    col(Outbox.sent_at).is_(None),
                    col(Outbox.given_up).is_(False),
                    col(Outbox.next_attempt_at) <= now,
                )
                .values(next_attempt_at=now + (_HELD_FOR_GOOD if digest else lease))
            )
            mine = bool(getattr(taken, "rowcount", 0) == 1)
            row = session.get(Outbox, letter.id)
            if mine and row is not None:
                if _reader_has_left(session, row):
                    # unsubscribed while it waited: one click means no more digests
                    row.given_up, row.last_error = True, "the subscriber has left"
                    session.add(row)
                    _record_delivery(session, row, DeliveryState.FAILED, now, row.last_error)
                    mine = False
                else:
                    _record_delivery(session, row, DeliveryState.SENDING, now)
            session.commit()
            return mine

    def sent(self, outbox_id: int, now: dt.datetime) -> None:
        with Session(self.engine) as session:
            row = session.get(Outbox, outbox_id)
            if row is not None:
                row.sent_at, row.attempts, row.last_error = now, row.attempts + 1, None
                session.add(row)
                _record_delivery(session, row, DeliveryState.SENT, now)
                session.commit()

    def failed(
        self, outbox_id: int, error: str, retry_at: dt.datetime | None, now: dt.datetime
    ) -> None:
        """Record a failed attempt: retried at `retry_at`, or given up when None."""
        with Session(self.engine) as session:
            row = session.get(Outbox, outbox_id)
            if row is not None:
                row.attempts += 1
                row.last_error = error
                if retry_at is None:
                    row.given_up = True
                else:
                    row.next_attempt_at = retry_at
                session.add(row)
                state = DeliveryState.FAILED if retry_at is None else DeliveryState.QUEUED
                _record_delivery(session, row, state, now, error)
                session.commit()

    def waiting(self) -> int:
        with Session(self.engine) as session:
            return int(
                session.exec(
                    select(func.count())
                    .select_from(Outbox)
                    .where(col(Outbox.sent_at).is_(None), col(Outbox.given_up).is_(False))
                ).one()
            )
