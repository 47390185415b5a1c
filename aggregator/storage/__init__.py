"""Storage behind one interface, split by domain: feeds, posts, subscribers, accounts,
registrations, meta.

Contains no business logic: callers decide, these modules only read and write.
Datetimes go in and out as aware UTC (see models.UTCDateTime).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from .accounts import AccountStore
from .db import create_schema, make_engine
from .feeds import FeedStore
from .meta import MetaStore
from .posts import PostStore
from .registrations import RegistrationStore
from .subscribers import SubscriberStore


class Storage:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.feeds = FeedStore(engine)
        self.posts = PostStore(engine)
        self.subscribers = SubscriberStore(engine)
        self.accounts = AccountStore(engine)
        self.registrations = RegistrationStore(engine)
        self.meta = MetaStore(engine)

    @classmethod
    def open(cls, url: str) -> Storage:
        engine = make_engine(url)
        create_schema(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()


__all__ = [
    "AccountStore",
    "FeedStore",
    "MetaStore",
    "PostStore",
    "RegistrationStore",
    "Storage",
    "SubscriberStore",
]
