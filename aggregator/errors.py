"""One exception tree for the whole project.

Front ends catch `AggregatorError` and show its message in one line; anything
else escaping is a bug. A failing feed is not an exception at the batch level:
`ingest` turns a `FeedError` into a recorded result so the batch goes on.
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Root of every error an organiser may see. The message is one readable line."""


class FieldError(AggregatorError):
    """A form's field is wrong: the message says, in plain words, what to do; `detail`
    is the technical reason, for whoever wants it."""

    def __init__(self, field: str, message: str, detail: str | None = None):
        super().__init__(message)
        self.field = field
        self.detail = detail


class ConfigError(AggregatorError):
    """The configuration file is missing or invalid."""


class FeedError(AggregatorError):
    """A feed could not be fetched or read. `reason` is what `status` shows."""

    def __init__(self, reason: str, *, retry_after: float | None = None, gone: bool = False):
        super().__init__(reason)
        self.reason = reason
        #: seconds the server asked us to wait (429/503 Retry-After), if any
        self.retry_after = retry_after
        #: the server said 410 Gone: stop polling until re-enabled
        self.gone = gone


class DiscoveryError(AggregatorError):
    """No feed could be found for a homepage."""


class DuplicateFeedError(AggregatorError):
    """The feed URL is already registered."""


class NotFoundError(AggregatorError):
    """A named contributor, subscriber or post does not exist."""


class DeliveryError(AggregatorError):
    """The mail server could not be reached or refused the digest."""


class OutputError(AggregatorError):
    """An output file could not be written (a full disk, a read-only folder)."""


class BusyError(AggregatorError):
    """Another process holds what this one needs (a second worker on SQLite)."""
