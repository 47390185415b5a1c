"""The `Aggregator`'s methods for browsing: the public site's pages (by contributor, by
day, by tag, search) and the numbers behind the dashboard's picture of the week. A part
of the one door (`core.Aggregator` inherits it), kept in a file of its own.

Days are the event's local days (`[event] timezone`), as everywhere readers look.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .states import DeliveryState

if TYPE_CHECKING:
    from .config import Settings
    from .storage import Storage
    from .storage.posts import PostView

#: a picture of the week covers at most this many days (a window left open ends today)
MAX_DAYS = 62


@dataclass(frozen=True)
class ContributorSummary:
    id: int
    name: str
    homepage: str
    posts: int
    latest: dt.datetime | None


@dataclass(frozen=True)
class Filter:
    """What a page of posts is narrowed to; empty shows every post."""

    contributor_id: int | None = None
    day: dt.date | None = None
    #: a tag's normalised key (`text.normalise_tag`)
    tag: str | None = None
    query: str | None = None


@dataclass(frozen=True)
class WeekPicture:
    """The dashboard's charts, as numbers: each series is (label, value) by day."""

    posts_per_day: list[tuple[dt.date, int]]
    posted: list[str]
    not_posted: list[str]
    subscribers: list[tuple[dt.date, int]]
    #: digest date -> (sent, failed or waiting)
    deliveries: list[tuple[dt.date, int, int]]


class Site:
    if TYPE_CHECKING:
        storage: Storage
        settings: Settings

        def now(self) -> dt.datetime: ...

        def local_today(self) -> dt.date: ...

    def _local_day(self, moment: dt.datetime) -> dt.date:
        return moment.astimezone(self.settings.event.tz).date()

    def _day_range(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """The UTC instants a local day starts and ends."""
        tz = self.settings.event.tz
        start = dt.datetime.combine(day, dt.time(), tz)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
        return start.astimezone(dt.UTC), end.astimezone(dt.UTC)

    def browse(
        self, page: int, per_page: int, narrowed: Filter = Filter()
    ) -> tuple[list[PostView], bool]:
        """Page `page` (from 1) of the shown posts, newest first, and whether more follow."""
        since, until = self._day_range(narrowed.day) if narrowed.day else (None, None)
        posts = self.storage.site.page(
            per_page + 1,
            (max(1, page) - 1) * per_page,
            contributor_id=narrowed.contributor_id,
            since=since,
            until=until,
            tag_key=narrowed.tag,
            query=narrowed.query,
        )
        return posts[:per_page], len(posts) > per_page

    def contributor_summaries(self) -> list[ContributorSummary]:
        """Every contributor, by name, with how many posts are shown and the latest's date."""
        return [ContributorSummary(*row) for row in self.storage.site.contributor_posts()]

    def contributor_summary(self, contributor_id: int) -> ContributorSummary | None:
        found = [c for c in self.contributor_summaries() if c.id == contributor_id]
        return found[0] if found else None

    def days_with_posts(self) -> list[tuple[dt.date, int]]:
        """Each local day that has posts, newest first, with how many."""
        counts = Counter(self._local_day(d) for d in self.storage.site.post_dates())
        return sorted(counts.items(), reverse=True)

    def _window(self, posted: list[dt.date]) -> list[dt.date]:
        """The collection window's days: the configured dates, else the posts' span,
        ending today at the latest, at most MAX_DAYS."""
        event, today = self.settings.event, self.local_today()
        first = event.collect_from or min(posted, default=today)
        last = event.collect_until or max([today, *posted])
        last = min(last, first + dt.timedelta(days=MAX_DAYS - 1))
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    def week_picture(self) -> WeekPicture:
        posted_days = [self._local_day(d) for d in self.storage.site.post_dates()]
        window = self._window(posted_days)
        per_day = Counter(posted_days)
        contributors = self.contributor_summaries()
        subscribers = self.storage.site.subscriber_dates()

        def active_on(day: dt.date) -> int:
            _start, end = self._day_range(day)
            return sum(
                1
                for joined, left, confirmed in subscribers
                if confirmed and joined < end and (left is None or left >= end)
            )

        today = self.local_today()
        deliveries: dict[dt.date, list[int]] = {}
        for day, state, count in self.storage.site.delivery_counts():
            deliveries.setdefault(day, [0, 0])[0 if state == DeliveryState.SENT else 1] += count
        return WeekPicture(
            posts_per_day=[(d, per_day.get(d, 0)) for d in window],
            posted=[c.name for c in contributors if c.posts],
            not_posted=[c.name for c in contributors if not c.posts],
            subscribers=[(d, active_on(d)) for d in window if d <= today],
            deliveries=[(d, sent, other) for d, (sent, other) in sorted(deliveries.items())],
        )
