"""The states a feed, a poll, a delivery and a registration can be in.

`StrEnum`s, so each member *is* the string stored in the database and compared in
templates: the tables keep their plain-text columns, and code names the states
instead of spelling them out.
"""

from __future__ import annotations

from enum import StrEnum


class PollOutcome(StrEnum):
    """What one poll of one feed came to (`feeds.last_result`)."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"
    FAILED = "failed"


class FeedKind(StrEnum):
    """A contributor's main feed, or one of the label feeds found beside it."""

    MAIN = "main"
    LABEL = "label"
    #: where a contributor's posts added by hand are kept: never fetched (`manual:<id>`)
    MANUAL = "manual"


class FeedState(StrEnum):
    """A feed's health as organisers see it (`status`, the dashboard, alerts)."""

    PAUSED = "paused"
    FAILING = "failing"
    NOT_MODIFIED = "not modified"
    OK = "ok"
    NOT_FETCHED = "not fetched yet"


class DeliveryState(StrEnum):
    """One subscriber's digest for one date (the exactly-once ledger)."""

    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    #: failed for now, so waiting in the outbox: the outbox's sender retries it with
    #: backoff, and nobody else sends it
    QUEUED = "queued"


class RegistrationState(StrEnum):
    """A blog registered through the public form, waiting for an organiser."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class PushState(StrEnum):
    """A feed's WebSub subscription at its hub."""

    #: asked the hub, waiting for its verification of intent
    SUBSCRIBING = "subscribing"
    #: verified: the hub pushes new content until the lease ends
    ACTIVE = "active"
    #: the feed was removed: asking the hub to stop
    UNSUBSCRIBING = "unsubscribing"
    #: the hub refused
    DENIED = "denied"
