"""SQLModel tables. Only the storage layer touches these.

Datetimes are aware UTC in Python; `UTCDateTime` stores them as naive UTC on
SQLite (which has no time zones) and as `timestamptz` on PostgreSQL.
Bump SCHEMA_VERSION and add a step to `db.MIGRATIONS` for any change to these tables.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Column, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import SCHEMA_VERSION, UTCDateTime

__all__ = ["SCHEMA_VERSION", "UTCDateTime"]


def when(*, nullable: bool = True, index: bool = False) -> Any:
    """A datetime column (see UTCDateTime)."""
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class Meta(SQLModel, table=True):
    key: str = Field(primary_key=True, max_length=64)
    value: str


class Contributor(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=300)
    homepage: str = Field(max_length=2000)
    all_posts: bool = False
    created_at: dt.datetime = when(nullable=False)
    #: why the last discovery attempt found no feed (seeded contributors are discovered lazily)
    discovery_error: str | None = Field(default=None, sa_column=Column(Text))


class Feed(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    contributor_id: int = Field(foreign_key="contributor.id", index=True)
    url: str = Field(unique=True, max_length=2000)
    #: "main" for the blog's feed, "label" for a feed of one event tag
    kind: str = Field(default="main", max_length=16)
    title: str = Field(default="", max_length=1000)
    etag: str | None = Field(default=None, max_length=1000)
    last_modified: str | None = Field(default=None, max_length=200)
    #: hash of the last body parsed, to skip servers that ignore conditional GET
    body_hash: str | None = Field(default=None, max_length=64)
    last_fetched_at: dt.datetime | None = when()
    last_success_at: dt.datetime | None = when()
    #: "ok" | "not_modified" | "failed" | None (never fetched)
    last_result: str | None = Field(default=None, max_length=16)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    #: a readable note when the feed was malformed but readable
    problem: str | None = Field(default=None, sa_column=Column(Text))
    error_count: int = 0
    next_due_at: dt.datetime | None = when(index=True)
    #: a server's Retry-After: not before this, even with `poll --all`
    retry_after_until: dt.datetime | None = when()
    #: "gone" (410) and "paused" feeds are not polled until re-enabled
    gone: bool = False
    paused: bool = False
    created_at: dt.datetime = when(nullable=False)
    #: `urls.host_key` of the url: a host's feeds are claimed by one worker at a time,
    #: so per-host politeness holds across workers
    host: str = Field(default="", max_length=300, index=True)
    #: the worker polling this feed now; the claim lasts while that worker reports (see
    #: `leases`)
    lease_owner: str | None = Field(default=None, max_length=200, index=True)
    #: when a worker last took it, so `poll --all` polls each feed once per run
    last_claimed_at: dt.datetime | None = when()


class Post(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    contributor_id: int = Field(foreign_key="contributor.id", index=True)
    feed_id: int = Field(foreign_key="feed.id", index=True)
    link: str | None = Field(default=None, max_length=2000)
    canonical_link: str | None = Field(default=None, max_length=2000)
    link_key: str | None = Field(default=None, index=True, max_length=2000)
    fingerprint: str | None = Field(default=None, index=True, max_length=64)
    entry_id: str = Field(max_length=2000)
    title: str = Field(sa_column=Column(Text, nullable=False))
    author: str = Field(default="", max_length=500)
    content: str = Field(sa_column=Column(Text, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    #: JSON list of category strings
    categories: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    published: dt.datetime | None = when()
    updated: dt.datetime | None = when()
    #: published date, clamped to first_seen when it lies in the future
    sort_date: dt.datetime = when(nullable=False, index=True)
    first_seen: dt.datetime = when(nullable=False, index=True)
    content_hash: str = Field(max_length=64)
    hidden: bool = False
    #: the local date of the digest that carried this post, once one did
    digest_date: dt.date | None = Field(default=None, index=True)


class PostSource(SQLModel, table=True):
    """Every (feed, entry) that maps to a post: the first-seen copy and its alternates."""

    __table_args__ = (UniqueConstraint("feed_id", "entry_key"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    feed_id: int = Field(foreign_key="feed.id", index=True)
    entry_key: str = Field(max_length=2000)
    is_primary: bool = False
    link: str | None = Field(default=None, max_length=2000)
    first_seen: dt.datetime = when(nullable=False)


class Subscriber(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, max_length=320)
    token: str = Field(unique=True, max_length=64)
    confirmed: bool = True
    created_at: dt.datetime = when(nullable=False)
    unsubscribed_at: dt.datetime | None = when()


class Digest(SQLModel, table=True):
    """One digest per local date: which posts it holds is fixed when it is first made."""

    digest_date: dt.date = Field(primary_key=True)
    created_at: dt.datetime = when(nullable=False)
    post_count: int = 0


class Delivery(SQLModel, table=True):
    """One row per (subscriber, digest date): the exactly-once ledger."""

    __table_args__ = (UniqueConstraint("subscriber_id", "digest_date"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    digest_date: dt.date = Field(foreign_key="digest.digest_date", index=True)
    #: a DeliveryState: "sending" (handed to SMTP, outcome unknown) | "sent" | "failed" |
    #: "queued" (in the outbox, retried with backoff)
    status: str = Field(max_length=16)
    message_id: str = Field(max_length=300)
    attempts: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text))
    updated_at: dt.datetime = when(nullable=False)


class Organiser(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, max_length=320)
    #: argon2 hash
    password_hash: str = Field(max_length=300)
    created_at: dt.datetime = when(nullable=False)
    #: bumped at logout and password change: every session cookie carrying an older
    #: number stops opening the dashboard
    session_version: int = 0


class Registration(SQLModel, table=True):
    """A blog registered on the public form, waiting for an organiser's decision."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=300)
    homepage: str = Field(max_length=2000)
    feed_url: str = Field(max_length=2000)
    feed_title: str = Field(default="", max_length=1000)
    email: str = Field(max_length=320)
    #: "pending" | "approved" | "rejected"
    status: str = Field(default="pending", max_length=16)
    created_at: dt.datetime = when(nullable=False)


class Outbox(SQLModel, table=True):
    """An email waiting to go out (confirmations, organisers' alerts), written in the same
    transaction as the change that causes it and sent by the worker with backoff."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    recipient: str = Field(max_length=320)
    #: the whole message, as the SMTP server will get it
    message: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: dt.datetime = when(nullable=False)
    next_attempt_at: dt.datetime = when(nullable=False, index=True)
    attempts: int = 0
    sent_at: dt.datetime | None = when()
    #: why the last attempt failed, or why sending was given up
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    given_up: bool = False


class Worker(SQLModel, table=True):
    """A process that polls (`run`, `poll`, `serve` with its worker): it reports every
    few seconds, and a row not reported for a lease is a worker gone."""

    id: str = Field(primary_key=True, max_length=200)
    hostname: str = Field(max_length=300)
    pid: int
    command: str = Field(max_length=32)
    started_at: dt.datetime = when(nullable=False)
    last_seen_at: dt.datetime = when(nullable=False, index=True)


class Job(SQLModel, table=True):
    """A scheduled job that one worker at a time runs (publish, digest): claimed with a
    lease; `wanted` > `handled` means it is asked for again."""

    name: str = Field(primary_key=True, max_length=64)
    owner: str | None = Field(default=None, max_length=200)
    lease_until: dt.datetime | None = when()
    wanted: int = 0
    handled: int = 0
    #: the last value the job finished for (the digest: its local date)
    done_for: str | None = Field(default=None, max_length=64)
    finished_at: dt.datetime | None = when()


class WebSub(SQLModel, table=True):
    """A feed's WebSub subscription (see `websub`). No foreign key: a removed feed's row
    stays until its hub confirms the unsubscription."""

    feed_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    hub: str = Field(max_length=2000)
    topic: str = Field(max_length=2000)
    #: the unguessable part of the callback address, one per subscription
    token: str = Field(unique=True, max_length=64)
    #: the HMAC key the hub signs content with
    secret: str = Field(max_length=128)
    #: a PushState
    state: str = Field(max_length=16)
    lease_until: dt.datetime | None = when()
    requested_at: dt.datetime | None = when()
    last_push_at: dt.datetime | None = when()
    created_at: dt.datetime = when(nullable=False)
    error: str | None = Field(default=None, sa_column=Column(Text))


class RateHit(SQLModel, table=True):
    """The web app's rate limits, shared by every `serve` process: hits per key in the
    current fixed window."""

    key: str = Field(primary_key=True, max_length=200)
    window_start: dt.datetime = when(nullable=False, index=True)
    hits: int = 0
