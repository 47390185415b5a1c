"""The dashboard's picture of the week as small bar charts, drawn on the server.

Only the geometry is worked out here (plain numbers in a fixed SVG viewBox); the
template `web/charts.html` draws it as inline SVG that scales with the page, with a
sentence for screen readers and the numbers as a table. No script, no library: a
handful of rectangles needs neither.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..site import WeekPicture

#: the drawing's size in SVG units; it scales to the width of its box
WIDTH, HEIGHT = 320, 150
LEFT, RIGHT, TOP, BOTTOM = 30, 6, 10, 22


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    #: a second part stacked on top (deliveries that failed); 0 for most charts
    other: int
    x: float
    width: float
    #: the main part's top and height, and the stacked part's, in SVG units
    y: float
    height: float
    other_y: float
    other_height: float


@dataclass(frozen=True)
class BarChart:
    id: str
    title: str
    #: the chart in one sentence, for screen readers and as its caption's text
    summary: str
    bars: list[Bar]
    #: the scale's top value and the names of the parts (the second is None when single)
    top: int
    names: tuple[str, str | None]
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def baseline(self) -> float:
        return HEIGHT - BOTTOM

    @property
    def left(self) -> int:
        return LEFT

    @property
    def right(self) -> int:
        return WIDTH - RIGHT


def _short_day(day: dt.date) -> str:
    return f"{day:%a} {day.day} {day:%b}"


def bar_chart(
    chart_id: str,
    title: str,
    summary: str,
    points: list[tuple[str, int, int]],
    names: tuple[str, str | None],
) -> BarChart:
    """Bars for (label, value, stacked other) points, scaled to the largest total."""
    top = max([value + other for _label, value, other in points] + [1])
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(points), 1)
    width = max(slot * 0.7, 1.0)
    bars = []
    for i, (label, value, other) in enumerate(points):
        height = plot_height * value / top
        other_height = plot_height * other / top
        y = HEIGHT - BOTTOM - height
        bars.append(
            Bar(
                label=label,
                value=value,
                other=other,
                x=round(LEFT + i * slot + (slot - width) / 2, 2),
                width=round(width, 2),
                y=round(y, 2),
                height=round(height, 2),
                other_y=round(y - other_height, 2),
                other_height=round(other_height, 2),
            )
        )
    return BarChart(chart_id, title, summary, bars, top, names)


def _peak(points: list[tuple[dt.date, int]]) -> str:
    if not points or max(n for _d, n in points) == 0:
        return ""
    day, count = max(points, key=lambda p: (p[1], p[0]))
    return f"; the most, {count}, on {_short_day(day)}"


def week_charts(picture: WeekPicture) -> list[BarChart]:
    """Posts per day, subscribers per day and digest deliveries, as bar charts."""
    posts = picture.posts_per_day
    total = sum(n for _d, n in posts)
    charts = [
        bar_chart(
            "posts-per-day",
            "Posts per day",
            f"{total} post{'' if total == 1 else 's'} over {len(posts)} "
            f"day{'' if len(posts) == 1 else 's'}{_peak(posts)}.",
            [(_short_day(d), n, 0) for d, n in posts],
            ("posts", None),
        )
    ]
    subs = picture.subscribers
    now = subs[-1][1] if subs else 0
    first = subs[0][1] if subs else 0
    charts.append(
        bar_chart(
            "subscribers",
            "Subscribers getting the digest",
            f"{now} subscriber{'' if now == 1 else 's'} now"
            + (f", from {first} on {_short_day(subs[0][0])}." if subs else "."),
            [(_short_day(d), n, 0) for d, n in subs],
            ("subscribers", None),
        )
    )
    deliveries = picture.deliveries
    sent = sum(s for _d, s, _o in deliveries)
    other = sum(o for _d, _s, o in deliveries)
    charts.append(
        bar_chart(
            "deliveries",
            "Digest deliveries",
            (
                f"{sent} sent over {len(deliveries)} digest"
                f"{'' if len(deliveries) == 1 else 's'}"
                + (f"; {other} failed or not sent yet." if other else "; none failed.")
            )
            if deliveries
            else "No digest sent yet.",
            [(_short_day(d), s, o) for d, s, o in deliveries],
            ("sent", "failed or waiting"),
        )
    )
    return charts
