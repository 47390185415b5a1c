"""Blogs registered through the public form, waiting for an organiser's decision."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ..errors import AggregatorError, NotFoundError
from ..states import RegistrationState
from .models import Registration


@dataclass(frozen=True)
class RegistrationRow:
    id: int
    name: str
    homepage: str
    feed_url: str
    feed_title: str
    email: str
    status: RegistrationState
    created_at: dt.datetime

    @classmethod
    def from_model(cls, r: Registration) -> RegistrationRow:
        return cls(
            id=r.id or 0,
            name=r.name,
            homepage=r.homepage,
            feed_url=r.feed_url,
            feed_title=r.feed_title,
            email=r.email,
            status=RegistrationState(r.status),
            created_at=r.created_at,
        )


class RegistrationStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def add(
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
                    Registration.feed_url == feed_url,
                    Registration.status == RegistrationState.PENDING,
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

    def all(self, status: RegistrationState = RegistrationState.PENDING) -> list[RegistrationRow]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(Registration)
                .where(Registration.status == status)
                .order_by(col(Registration.created_at))
            ).all()
            return [RegistrationRow.from_model(r) for r in rows]

    def pending(self, registration_id: int) -> RegistrationRow:
        with Session(self.engine) as session:
            row = session.get(Registration, registration_id)
            if row is None or row.status != RegistrationState.PENDING:
                raise NotFoundError("no such pending registration")
            return RegistrationRow.from_model(row)

    def decide(self, registration_id: int, status: RegistrationState) -> RegistrationRow:
        with Session(self.engine) as session:
            row = session.get(Registration, registration_id)
            if row is None or row.status != RegistrationState.PENDING:
                raise NotFoundError("no such pending registration")
            row.status = status
            session.add(row)
            session.commit()
            return RegistrationRow.from_model(row)
