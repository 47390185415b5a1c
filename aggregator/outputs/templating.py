"""The one Jinja environment for the page, the digest emails and the web app, with the
filters they share (local times, days, readable tags, the event's `about` text).

Autoescaping is on for HTML and XML; templates live in `aggregator/templates/`
(`web/` for the web app, with shared layout and macros beside it). Whitespace
control trims a block tag's own line only (`trim_blocks`), never the space between
words on either side of it.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Iterable
from typing import Any

import jinja2
from markupsafe import Markup

from ..text import excerpt, normalise_tag, readable_tag


def local(moment: dt.datetime | None, tz: zoneinfo.ZoneInfo) -> dt.datetime | None:
    return moment.astimezone(tz) if moment else None


def day_name(day: dt.date | dt.datetime) -> str:
    """`Tuesday 16 May 2017`."""
    return f"{day:%A} {day.day} {day:%B %Y}"


def short_date(day: dt.date | dt.datetime) -> str:
    """`16 May 2017`."""
    return f"{day.day} {day:%B %Y}"


def clock(moment: dt.datetime) -> str:
    """`14:05 BST`: the time with its zone's name."""
    return f"{moment:%H:%M} {moment.tzname() or ''}".strip()


def when(moment: dt.datetime) -> str:
    """`Sat 5 Dec, 14:05 GMT`: a moment of the week, in the zone it is given in."""
    return f"{moment:%a} {moment.day} {moment:%b}, {clock(moment)}"


def relative(moment: dt.datetime, now: dt.datetime) -> str:
    """`5 minutes ago`, `in 2 hours`, `3 days ago`: how far a moment is from now."""
    seconds = (moment - now).total_seconds()
    size = abs(seconds)
    if size < 60:
        return "just now"
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if size >= length * (2 if unit == "day" else 1):
            count = round(size / length)
            break
    words = f"{count} {unit}{'' if count == 1 else 's'}"
    return f"in {words}" if seconds > 0 else f"{words} ago"


def by_day(posts: Iterable[Any], tz: zoneinfo.ZoneInfo) -> list[tuple[dt.date, list[Any]]]:
    """Posts (already newest first) grouped by the local day they sort by."""
    groups: list[tuple[dt.date, list[Any]]] = []
    for post in posts:
        day = post.sort_date.astimezone(tz).date()
        if not groups or groups[-1][0] != day:
            groups.append((day, []))
        groups[-1][1].append(post)
    return groups


def tag_label(category: str, event_tags: Iterable[str]) -> str:
    """The event's own spelling of one of its tags, else the category made readable."""
    key = normalise_tag(category)
    for tag in event_tags:
        if normalise_tag(tag) == key:
            return readable_tag(tag)
    return readable_tag(category)


def tag_pairs(categories: Iterable[str], event_tags: Iterable[str]) -> list[tuple[str, str]]:
    """(key, readable name) of each distinct tag, in the feed's order."""
    seen: dict[str, str] = {}
    for category in categories:
        key = normalise_tag(category)
        if key and key not in seen:
            seen[key] = tag_label(category, event_tags)
    return list(seen.items())


@functools.lru_cache(maxsize=8)
def markdown(source: str) -> Markup:
    """An organiser's Markdown as safe HTML (no raw HTML passes, links get rel=noopener)."""
    import nh3
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark", {"html": False}).render(source)
    return Markup(nh3.clean(rendered, link_rel="noopener noreferrer"))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("aggregator", "templates"),
        autoescape=jinja2.select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        local=local,
        day_name=day_name,
        short_date=short_date,
        clock=clock,
        when=when,
        relative=relative,
        by_day=by_day,
        tag_label=tag_label,
        tag_pairs=tag_pairs,
        tag_key=normalise_tag,
        markdown=markdown,
        excerpt=excerpt,
    )
    return env


_env = _environment()


def templates() -> jinja2.Environment:
    return _env
