"""Storage behind one interface, split by domain: feeds, posts, subscribers.

Contains no business logic: callers decide, these modules only read and write.
Datetimes go in and out as aware UTC (see models.UTCDateTime).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from .db import create_schema, make_engine
from .feeds import FeedStore
from .posts import PostStore
from .subscribers import SubscriberStore
from .web import WebStore


class Storage:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.feeds = FeedStore(engine)
        self.posts = PostStore(engine)
        self.subscribers = SubscriberStore(engine)
        self.web = WebStore(engine)

    @classmethod
    def open(cls, url: str) -> Storage:
        engine = make_engine(url)
        create_schema(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["FeedStore", "PostStore", "Storage", "SubscriberStore", "WebStore"]
