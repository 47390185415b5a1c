"""Storage behind one interface, split by domain: feeds, posts, subscribers, accounts,
registrations, meta, and
the workers' leases and jobs.

Contains no business logic: callers decide, these modules only read and write.
Datetimes go in and out as aware UTC (see types.UTCDateTime). Each domain's store is
made (and its module imported) when first used, so a command pays only for the
tables it touches.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from .db import create_schema, make_engine
from .feeds import FeedStore

if TYPE_CHECKING:
    from .accounts import AccountStore
    from .jobs import JobStore
    from .leases import LeaseStore
    from .meta import MetaStore
    from .outbox import OutboxStore
    from .posts import PostStore
    from .rates import RateStore
    from .registrations import RegistrationStore
    from .site import SiteQueries
    from .subscribers import SubscriberStore
    from .websub import WebSubStore


class Storage:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.feeds = FeedStore(engine)

    @functools.cached_property
    def posts(self) -> PostStore:
        from .posts import PostStore

        return PostStore(self.engine)

    @functools.cached_property
    def subscribers(self) -> SubscriberStore:
        from .subscribers import SubscriberStore

        return SubscriberStore(self.engine)

    @functools.cached_property
    def accounts(self) -> AccountStore:
        from .accounts import AccountStore

        return AccountStore(self.engine)

    @functools.cached_property
    def registrations(self) -> RegistrationStore:
        from .registrations import RegistrationStore

        return RegistrationStore(self.engine)

    @functools.cached_property
    def outbox(self) -> OutboxStore:
        from .outbox import OutboxStore

        return OutboxStore(self.engine)

    @functools.cached_property
    def leases(self) -> LeaseStore:
        from .leases import LeaseStore

        return LeaseStore(self.engine)

    @functools.cached_property
    def jobs(self) -> JobStore:
        from .jobs import JobStore

        return JobStore(self.engine)

    @functools.cached_property
    def rates(self) -> RateStore:
        from .rates import RateStore

        return RateStore(self.engine)

    @functools.cached_property
    def websub(self) -> WebSubStore:
        from .websub import WebSubStore

        return WebSubStore(self.engine)

    @functools.cached_property
    def site(self) -> SiteQueries:
        from .site import SiteQueries

        return SiteQueries(self.engine, self.posts)

    @functools.cached_property
    def meta(self) -> MetaStore:
        from .meta import MetaStore

        return MetaStore(self.engine)

    @classmethod
    def open(cls, url: str) -> Storage:
        engine = make_engine(url)
        create_schema(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["FeedStore", "Storage"]
