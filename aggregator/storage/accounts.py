"""Organiser accounts for the dashboard (the password hash only; `auth` makes it)."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ..errors import NotFoundError
from .models import Organiser


class AccountStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def add_organiser(self, email: str, password_hash: str, now: dt.datetime) -> None:
        """Create the account, or set a new password hash on an existing one (which
        ends its sessions)."""
        with Session(self.engine) as session:
            existing = session.exec(select(Organiser).where(Organiser.email == email)).first()
            if existing is not None:
                existing.password_hash = password_hash
                existing.session_version += 1
                session.add(existing)
            else:
                # a random first number: cookies of a removed account with the same address
                # must not open the new one
                session.add(
                    Organiser(
                        email=email,
                        password_hash=password_hash,
                        created_at=now,
                        session_version=secrets.randbelow(2**31),
                    )
                )
            session.commit()

    def organiser_hash(self, email: str) -> str | None:
        with Session(self.engine) as session:
            return session.exec(
                select(Organiser.password_hash).where(Organiser.email == email)
            ).first()

    def session_version(self, email: str) -> int | None:
        """The account's current session number; None when there is no such account."""
        with Session(self.engine) as session:
            return session.exec(
                select(Organiser.session_version).where(Organiser.email == email)
            ).first()

    def end_sessions(self, email: str) -> None:
        with Session(self.engine) as session:
            existing = session.exec(select(Organiser).where(Organiser.email == email)).first()
            if existing is not None:
                existing.session_version += 1
                session.add(existing)
                session.commit()

    def remove_organiser(self, email: str) -> None:
        with Session(self.engine) as session:
            existing = session.exec(select(Organiser).where(Organiser.email == email)).first()
            if existing is None:
                raise NotFoundError(f"no organiser account for {email}")
            session.delete(existing)
            session.commit()

    def organiser_emails(self) -> list[str]:
        with Session(self.engine) as session:
            return list(session.exec(select(Organiser.email).order_by(Organiser.email)))
