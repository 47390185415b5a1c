"""Field readers shared by both parsing paths (feedparser's and the fast path)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dateutil import parser as date_parser

from ..text import one_line


def iso_date(value: Any) -> dt.datetime | None:
    """An ISO 8601 / RFC 3339 string as aware UTC (no zone means UTC); None if it is not one."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)  # fast, and what fastfeedparser writes
    except ValueError:
        try:
            parsed = date_parser.isoparse(value)
        except (ValueError, OverflowError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def categories_of(tags: list[dict[str, Any]] | None) -> tuple[str, ...]:
    """Category names in feed order, once each. An Atom category may carry a human label
    beside its term: both are kept, since either can match an event tag."""
    names = (one_line(v or "") for t in tags or [] for v in (t.get("term"), t.get("label")))
    return tuple(c for c in dict.fromkeys(names) if c)
