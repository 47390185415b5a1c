"""Digest subscribers, digests and the per-(subscriber, date) delivery ledger."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ..errors import NotFoundError
from ..models import Subscriber


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


def _row(s: Subscriber) -> SubscriberRow:
    return SubscriberRow(
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
                _row(s) for s in session.exec(select(Subscriber).order_by(col(Subscriber.email)))
            ]

    def active(self) -> list[SubscriberRow]:
        return [s for s in self.all() if s.active]
