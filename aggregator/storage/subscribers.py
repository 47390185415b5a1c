"""Digest subscribers, digests and the per-(subscriber, date) delivery ledger."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Table, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ..errors import NotFoundError
from ..states import DeliveryState
from .models import Delivery, Subscriber
from .outbox import Letter, queue, waiting_for


@dataclass(frozen=True)
class SubscriberRow:
    id: int
    email: str
    token: str
    confirmed: bool
    created_at: dt.datetime
    unsubscribed_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.confirmed and self.unsubscribed_at is None

    @classmethod
    def from_model(cls, s: Subscriber) -> SubscriberRow:
        return cls(
            id=s.id or 0,
            email=s.email,
            token=s.token,
            confirmed=s.confirmed,
            created_at=s.created_at,
            unsubscribed_at=s.unsubscribed_at,
        )


class SubscriberStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, email: str, now: dt.datetime, *, confirmed: bool = True) -> bool:
        """Add (or re-activate) an address; False when it was already subscribed."""
        with Session(self.engine) as session:
            existing = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
            if existing is not None:
                if existing.unsubscribed_at is None and existing.confirmed == confirmed:
                    return False
                existing.unsubscribed_at = None
                existing.confirmed = existing.confirmed or confirmed
                session.add(existing)
                session.commit()
                return True
            session.add(
                Subscriber(
                    email=email,
                    token=secrets.token_urlsafe(24),
                    confirmed=confirmed,
                    created_at=now,
                )
            )
            session.commit()
            return True

    def request(self, email: str, now: dt.datetime, confirmation: Callable[[str], Letter]) -> bool:
        """A subscription from the web form. Unless the address already gets the digest,
        queue its confirmation (`confirmation(token)`) in the same transaction; returns
        whether one was queued (the caller answers the same either way)."""
        with Session(self.engine) as session:
            existing = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
            if existing is None:
                existing = Subscriber(
                    email=email, token=secrets.token_urlsafe(24), confirmed=False, created_at=now
                )
            elif existing.confirmed and existing.unsubscribed_at is None:
                return False
            else:
                existing.confirmed = False
                existing.unsubscribed_at = None
            session.add(existing)
            letter = confirmation(existing.token)
            # asked twice while the mail server is away: one confirmation is enough
            if not waiting_for(session, letter.kind, letter.recipient):
                queue(session, [letter], now)
            session.commit()
            return True

    def by_token(self, token: str) -> str | None:
        with Session(self.engine) as session:
            return session.exec(select(Subscriber.email).where(Subscriber.token == token)).first()

    def pending(self, token: str) -> str | None:
        """The address a confirmation link is for, while it waits to be confirmed."""
        with Session(self.engine) as session:
            return session.exec(
                select(Subscriber.email).where(
                    Subscriber.token == token, col(Subscriber.unsubscribed_at).is_(None)
                )
            ).first()

    def confirm(self, token: str) -> str | None:
        """Confirm by token; returns the address, or None for an unknown token or an
        address that has unsubscribed since (it must ask again: an old link is no consent)."""
        with Session(self.engine) as session:
            existing = session.exec(select(Subscriber).where(Subscriber.token == token)).first()
            if existing is None or existing.unsubscribed_at is not None:
                return None
            existing.confirmed = True
            existing.unsubscribed_at = None
            session.add(existing)
            session.commit()
            return existing.email

    def remove(self, email: str, now: dt.datetime) -> None:
        with Session(self.engine) as session:
            existing = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
            if existing is None or existing.unsubscribed_at is not None:
                raise NotFoundError(f"{email} is not subscribed")
            existing.unsubscribed_at = now
            session.add(existing)
            session.commit()

    def unsubscribe_token(self, token: str, now: dt.datetime) -> str | None:
        """Unsubscribe by token; returns the address, or None for an unknown token."""
        with Session(self.engine) as session:
            existing = session.exec(select(Subscriber).where(Subscriber.token == token)).first()
            if existing is None:
                return None
            if existing.unsubscribed_at is None:
                existing.unsubscribed_at = now
                session.add(existing)
                session.commit()
            return existing.email

    def all(self) -> list[SubscriberRow]:
        with Session(self.engine) as session:
            return [
                SubscriberRow.from_model(s)
                for s in session.exec(select(Subscriber).order_by(col(Subscriber.email)))
            ]

    def active(self) -> list[SubscriberRow]:
        return [s for s in self.all() if s.active]

    # ---- deliveries ----

    def awaiting_delivery(self, date: dt.date) -> list[SubscriberRow]:
        """Active subscribers with no delivery for `date`, or a failed one to retry."""
        with Session(self.engine) as session:
            done = select(Delivery.subscriber_id).where(
                Delivery.digest_date == date,
                col(Delivery.status).in_(
                    [DeliveryState.SENT, DeliveryState.SENDING, DeliveryState.QUEUED]
                ),
            )
            rows = session.exec(
                select(Subscriber)
                .where(
                    col(Subscriber.confirmed).is_(True),
                    col(Subscriber.unsubscribed_at).is_(None),
                    col(Subscriber.id).not_in(done),
                )
                .order_by(col(Subscriber.id))
            ).all()
            return [SubscriberRow.from_model(s) for s in rows]

    def claim_delivery(
        self, subscriber_id: int, date: dt.date, message_id: str, now: dt.datetime
    ) -> bool:
        """Take a subscriber's digest for `date` to send ("sending"): True for one sender
        only, however many run at once (several workers, `aggregator digest`). A failed
        delivery may be taken again; a sent or uncertain one never is."""
        deliveries: Table = Delivery.__table__  # type: ignore[attr-defined]
        mine = {"message_id": message_id, "updated_at": now, "status": DeliveryState.SENDING}
        with self.engine.begin() as conn:
            retried = conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.subscriber_id == subscriber_id,
                    deliveries.c.digest_date == date,
                    deliveries.c.status == DeliveryState.FAILED,
                )
                .values(**mine, error=None, attempts=deliveries.c.attempts + 1)
            )
            if retried.rowcount:
                return True
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            first = conn.execute(
                dialect.insert(deliveries)
                .values(subscriber_id=subscriber_id, digest_date=date, attempts=1, **mine)
                .on_conflict_do_nothing(index_elements=["subscriber_id", "digest_date"])
                .returning(deliveries.c.id)
            )
            return first.first() is not None

    def mark_delivery(
        self,
        subscriber_id: int,
        date: dt.date,
        status: str,
        message_id: str,
        now: dt.datetime,
        error: str | None = None,
    ) -> None:
        with Session(self.engine) as session:
            row = session.exec(
                select(Delivery).where(
                    Delivery.subscriber_id == subscriber_id, Delivery.digest_date == date
                )
            ).first()
            if row is None:
                row = Delivery(
                    subscriber_id=subscriber_id,
                    digest_date=date,
                    status=status,
                    message_id=message_id,
                    updated_at=now,
                )
            row.status = status
            row.message_id = message_id
            row.updated_at = now
            row.error = error
            if status == DeliveryState.SENDING:
                row.attempts += 1
            session.add(row)
            session.commit()

    def queue_delivery(
        self,
        subscriber_id: int,
        date: dt.date,
        letter: Letter,
        now: dt.datetime,
        error: str,
    ) -> None:
        """A digest that could not go out now goes to the outbox, in the same transaction
        as its delivery's new state ("queued"): the outbox's sender retries it with
        backoff and records the outcome here (`outbox.digest_kind`)."""
        with Session(self.engine) as session:
            row = session.exec(
                select(Delivery).where(
                    Delivery.subscriber_id == subscriber_id, Delivery.digest_date == date
                )
            ).one()
            row.status, row.updated_at, row.error = DeliveryState.QUEUED, now, error
            session.add(row)
            queue(session, [letter], now)
            session.commit()

    def deliveries(self, date: dt.date) -> dict[str, str]:
        """email -> delivery status for one digest date."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(Subscriber.email, Delivery.status)
                .join(Delivery, col(Delivery.subscriber_id) == Subscriber.id)
                .where(Delivery.digest_date == date)
            ).all()
            return dict(rows)
