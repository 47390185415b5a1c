"""Small named values kept with the data: the session signing key, job markers."""

from __future__ import annotations

import secrets

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from .models import Meta


class MetaStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self, key: str) -> str | None:
        with Session(self.engine) as session:
            row = session.get(Meta, key)
            return row.value if row else None

    def set(self, key: str, value: str) -> None:
        with Session(self.engine) as session:
            row = session.get(Meta, key) or Meta(key=key, value=value)
            row.value = value
            session.add(row)
            session.commit()

    def secret_key(self) -> str:
        """A random key made once per database, for signing sessions and links."""
        with Session(self.engine) as session:
            row = session.get(Meta, "secret_key")
            if row is not None:
                return row.value
            session.add(Meta(key="secret_key", value=secrets.token_urlsafe(48)))
            try:
                session.commit()
            except IntegrityError:  # another process made it at the same moment: theirs
                session.rollback()
        return self.secret_key()
