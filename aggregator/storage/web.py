"""What only the web app needs: organiser accounts, pending registrations, the secret key."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ..errors import AggregatorError, NotFoundError
from .models import Meta, Organiser, Registration


@dataclass(frozen=True)
class RegistrationRow:
    id: int
    name: str
    homepage: str
    feed_url: str
    feed_title: str
    email: str
    status: str
    created_at: dt.datetime


class WebStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def secret_key(self) -> str:
        """A random key made once per database, for signing sessions and links."""
        with Session(self.engine) as session:
            row = session.get(Meta, "secret_key")
            if row is None:
                row = Meta(key="secret_key", value=secrets.token_urlsafe(48))
                session.add(row)
                session.commit()
            return row.value

    # ---- organisers ----

    def add_organiser(self, email: str, password_hash: str, now: dt.datetime) -> None:
        with Session(self.engine) as session:
            existing = session.exec(select(Organiser).where(Organiser.email == email)).first()
            if existing is not None:
                existing.password_hash = password_hash
                session.add(existing)
            else:
                session.add(Organiser(email=email, password_hash=password_hash, created_at=now))
            session.commit()

    def organiser_hash(self, email: str) -> str | None:
        with Session(self.engine) as session:
            return session.exec(
                select(Organiser.password_hash).where(Organiser.email == email)
            ).first()

    def organiser_emails(self) -> list[str]:
        with Session(self.engine) as session:
            return list(session.exec(select(Organiser.email).order_by(Organiser.email)))

    def get_meta(self, key: str) -> str | None:
        with Session(self.engine) as session:
            row = session.get(Meta, key)
            return row.value if row else None

    def set_meta(self, key: str, value: str) -> None:
        with Session(self.engine) as session:
            row = session.get(Meta, key) or Meta(key=key, value=value)
            row.value = value
            session.add(row)
            session.commit()

    def organiser_count(self) -> int:
        with Session(self.engine) as session:
            return len(session.exec(select(Organiser.id)).all())

    # ---- registrations ----

    def add_registration(
        self,
        name: str,
        homepage: str,
        feed_url: str,
        feed_title: str,
        email: str,
        now: dt.datetime,
    ) -> int:
        with Session(self.engine) as session:
            pending = session.exec(
                select(Registration).where(
                    Registration.feed_url == feed_url, Registration.status == "pending"
                )
            ).first()
            if pending is not None:
                raise AggregatorError("this blog is already waiting for an organiser's approval")
            row = Registration(
                name=name,
                homepage=homepage,
                feed_url=feed_url,
                feed_title=feed_title,
                email=email,
                created_at=now,
            )
            session.add(row)
            session.commit()
            assert row.id is not None
            return row.id

    def registrations(self, status: str = "pending") -> list[RegistrationRow]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(Registration)
                .where(Registration.status == status)
                .order_by(col(Registration.created_at))
            ).all()
            return [
                RegistrationRow(
                    r.id or 0,
                    r.name,
                    r.homepage,
                    r.feed_url,
                    r.feed_title,
                    r.email,
                    r.status,
                    r.created_at,
                )
                for r in rows
            ]

    def decide_registration(self, registration_id: int, status: str) -> RegistrationRow:
        with Session(self.engine) as session:
            row = session.get(Registration, registration_id)
            if row is None or row.status != "pending":
                raise NotFoundError("no such pending registration")
            row.status = status
            session.add(row)
            session.commit()
            return RegistrationRow(
                row.id or 0,
                row.name,
                row.homepage,
                row.feed_url,
                row.feed_title,
                row.email,
                row.status,
                row.created_at,
            )
