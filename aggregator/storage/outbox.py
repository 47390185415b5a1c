"""Emails waiting to go out, and the record of each attempt."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from .models import Meta, Outbox


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

    def claim(self, outbox_id: int, now: dt.datetime, lease: dt.timedelta) -> bool:
        """Take a due letter for sending: True for one sender only, however many run at
        once (the web app's background task, the worker, `aggregator outbox`). A sender
        that dies holding it lets the lease run out, and the letter is due again."""
        with Session(self.engine) as session:
            taken = session.execute(
                update(Outbox)
                .where(
                    col(Outbox.id) == outbox_id,
                    col(Outbox.sent_at).is_(None),
                    col(Outbox.given_up).is_(False),
                    col(Outbox.next_attempt_at) <= now,
                )
                .values(next_attempt_at=now + lease)
            )
            session.commit()
            return bool(getattr(taken, "rowcount", 0) == 1)

    def sent(self, outbox_id: int, now: dt.datetime) -> None:
        with Session(self.engine) as session:
            row = session.get(Outbox, outbox_id)
            if row is not None:
                row.sent_at, row.attempts, row.last_error = now, row.attempts + 1, None
                session.add(row)
                session.commit()

    def failed(self, outbox_id: int, error: str, retry_at: dt.datetime | None) -> None:
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
