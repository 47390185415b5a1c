"""Is this entry an event post? Pure decisions over plain data (the README's "What
counts as an event post": a tag, a hashtag or a keyword, inside the collection dates)."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

from ..text import normalise_phrase, normalise_tag

# a hashtag in rendered text: '#' not preceded by a word character or '&' (entities)
_HASHTAG = re.compile(r"(?<![\w&/])#(\w[\w-]*)")


def hashtags(text: str) -> set[str]:
    if "#" not in text:
        return set()
    return {normalise_tag(tag) for tag in _HASHTAG.findall(text)}


@dataclass(frozen=True)
class EventRules:
    """The event's matching rules, normalised once."""

    tags: frozenset[str]
    keyword_patterns: tuple[re.Pattern[str], ...]
    collect_from: dt.date | None
    collect_until: dt.date | None
    timezone: zoneinfo.ZoneInfo

    @classmethod
    def build(
        cls,
        tags: list[str],
        keywords: list[str],
        collect_from: dt.date | None,
        collect_until: dt.date | None,
        timezone: zoneinfo.ZoneInfo,
    ) -> EventRules:
        patterns = tuple(
            re.compile(r"(?<!\w)" + re.escape(normalise_phrase(k)) + r"(?!\w)")
            for k in keywords
            if normalise_phrase(k)
        )
        normalised = frozenset(t for t in (normalise_tag(tag) for tag in tags) if t)
        return cls(normalised, patterns, collect_from, collect_until, timezone)

    def matches_topic(self, categories: tuple[str, ...], title: str, text: str) -> bool:
        """Tags (categories or hashtags) or keywords in the title or reader-visible text."""
        if self.tags:
            if any(normalise_tag(c) in self.tags for c in categories):
                return True
            if (hashtags(title) | hashtags(text)) & self.tags:
                return True
        if self.keyword_patterns:
            haystack = normalise_phrase(title) + "\n" + normalise_phrase(text)
            if any(p.search(haystack) for p in self.keyword_patterns):
                return True
        return False

    def in_window(self, when: dt.datetime | None) -> bool:
        """Inclusive window in the event's time zone; an undated post counts as 'now'
        and is judged by the caller passing first-seen time."""
        if when is None:
            return True
        local_day = when.astimezone(self.timezone).date()
        if self.collect_from and local_day < self.collect_from:
            return False
        return not (self.collect_until and local_day > self.collect_until)

    def is_event_post(
        self,
        *,
        all_posts: bool,
        categories: tuple[str, ...],
        title: str,
        text: str,
        when: dt.datetime | None,
    ) -> bool:
        if not self.in_window(when):
            return False
        return all_posts or self.matches_topic(categories, title, text)
