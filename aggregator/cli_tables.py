"""How the CLI shows long work and lays out its tables: a progress bar for a poll on a
terminal; for tables, rich tables on a terminal, plain aligned text when
piped or when there are thousands of rows. Formatting only; the rows' meaning comes
from `health.FeedHealth`."""

from __future__ import annotations

import datetime as dt
import sys
import threading
from typing import TYPE_CHECKING

from .health import FeedHealth

if TYPE_CHECKING:
    from rich.table import Table

    from .core import Aggregator
    from .records import PollSummary
    from .storage.feeds import ContributorRow
    from .storage.leases import WorkerRow
    from .storage.subscribers import SubscriberRow

STATUS_COLUMNS = (
    "Contributor",
    "Feed",
    "Last fetch (UTC)",
    "Result",
    "Errors",
    "Next try (UTC)",
    "Posts",
)
#: above this many rows `status` prints plain aligned text: a rich table of thousands of
#: rows takes seconds to lay out
RICH_TABLE_MAX_ROWS = 300


def when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


def workers_lines(
    workers: list[tuple[WorkerRow, list[str]]], now: dt.datetime, *, shown: int = 5
) -> str:
    """The workers alive, when each last reported, and the feeds each holds."""
    if not workers:
        return "Workers: none running (start one with: aggregator run)"
    lines = [f"Workers: {len(workers)} alive"]
    for w, feeds in workers:
        ago = max(0, int((now - w.last_seen_at).total_seconds()))
        line = f"  {w.id} (aggregator {w.command or '?'}): last report {ago} s ago"
        if feeds:
            more = f" and {len(feeds) - shown} more" if len(feeds) > shown else ""
            line += f"; polling {len(feeds)} feed(s): {', '.join(feeds[:shown])}{more}"
        lines.append(line)
    return "\n".join(lines)


def print_table(table: Table) -> None:
    """Tables wrap to the terminal; piped into a file or another program they stay whole."""
    from rich.console import Console

    Console(width=None if sys.stdout.isatty() else 240).print(table)


def status_rows(feeds: list[FeedHealth]) -> list[tuple[str, ...]]:
    """One row of plain strings per feed (and per contributor still without one)."""
    rows: list[tuple[str, ...]] = []
    for f in feeds:
        if not f.has_feed:
            rows.append((f.contributor, f.url, "—", f.result, "", "next poll", "0"))
            continue
        rows.append(
            (
                f.contributor,
                f.url + (" (label)" if f.kind == "label" else ""),
                when(f.last_fetched_at),
                f.result,
                str(f.error_count),
                when(f.next_try),
                str(f.posts),
            )
        )
    return rows


def plain_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    )


def rich_status(rows: list[tuple[str, ...]]) -> Table:
    from rich.markup import escape
    from rich.table import Table

    table = Table(*STATUS_COLUMNS)
    for row in rows:
        cells = [escape(cell) for cell in row]
        if not row[3].startswith(("ok", "not modified", "paused", "not fetched")):
            cells[3] = f"[red]{cells[3]}[/red]"
        table.add_row(*cells)
    return table


def poll_with_progress(
    agg: Aggregator, *, include_not_due: bool, stop: threading.Event | None = None
) -> PollSummary:
    """A poll with a progress bar on a terminal, silent when piped (cron, logs)."""
    if not sys.stdout.isatty():
        return agg.update_feeds(include_not_due=include_not_due, stop=stop)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("Polling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(), transient=True) as progress:
        task = progress.add_task("poll", total=None)
        return agg.update_feeds(
            include_not_due=include_not_due,
            stop=stop,
            on_start=lambda n: progress.update(task, total=n),
            on_result=lambda _r: progress.advance(task),
        )


def contributors_table(people: list[ContributorRow]) -> Table:
    from rich.table import Table

    table = Table("Contributor", "Homepage", "Feeds", "All posts")
    for c in people:
        feeds = "\n".join(f"{f.url}{' (label)' if f.kind == 'label' else ''}" for f in c.feeds)
        if not feeds:
            feeds = f"none yet: {c.discovery_error}" if c.discovery_error else "found at next poll"
        table.add_row(c.name, c.homepage, feeds, "yes" if c.all_posts else "")
    return table


def subscribers_table(rows: list[SubscriberRow]) -> Table:
    from rich.table import Table

    table = Table("Email", "Since (UTC)", "State")
    for row in rows:
        if row.active:
            state = "subscribed"
        else:
            state = "unsubscribed" if row.unsubscribed_at else "awaiting confirmation"
        table.add_row(row.email, when(row.created_at), state)
    return table
