"""The `aggregator` command: thin commands over `Aggregator`.

Errors an organiser can act on become one line on stderr and exit status 1;
nothing here decides anything about feeds or posts.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from . import cli_coercion as _cli_coercion  # noqa: F401  (typer's option checks, when needed)
from .config import load_settings
from .errors import AggregatorError
from .states import FeedKind, PollOutcome

if TYPE_CHECKING:
    from .core import Aggregator

app = typer.Typer(
    help="Collect the posts contributors write for an event into one feed, page and digest.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
contributors_app = typer.Typer(help="Register and manage contributor blogs.", no_args_is_help=True)
posts_app = typer.Typer(
    help="Hide a post from the feed, page and digests, or show it again.", no_args_is_help=True
)
feeds_app = typer.Typer(help="Pause or resume polling of one feed.", no_args_is_help=True)
app.add_typer(contributors_app, name="contributors")
app.add_typer(posts_app, name="posts")
subscribers_app = typer.Typer(help="Manage digest recipients.", no_args_is_help=True)
organisers_app = typer.Typer(help="Accounts for the web dashboard.", no_args_is_help=True)
app.add_typer(organisers_app, name="organisers")
app.add_typer(feeds_app, name="feeds")
app.add_typer(subscribers_app, name="subscribers")

F = TypeVar("F", bound=Callable[..., Any])


class _State:
    config: Path | None = None


state = _State()


@app.callback()
def _main(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file (default: $AGGREGATOR_CONFIG, else config/event.toml).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    state.config = config
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def friendly(func: F) -> F:
    """Turn an AggregatorError into one line on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AggregatorError as e:
            say(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            say("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def aggregator() -> Iterator[Aggregator]:
    # imported here: `--help` and the worker processes that parse feeds (which import
    # the program's main module) need not load the database and HTTP layers
    from .core import Aggregator

    with Aggregator(load_settings(state.config)) as agg:
        yield agg


def say(line: str, *, err: bool = False) -> None:
    """One plain line; never wrapped, so paths and URLs can be copied."""
    typer.echo(line, err=err)


# ---- commands ----


@app.command()
@friendly
def init() -> None:
    """Create the database schema and the output folder (safe to run again)."""
    with aggregator() as agg:
        say(f"Ready: database {agg.settings.database_url}, outputs in {agg.settings.output_dir}/")


@contributors_app.command("add")
@friendly
def contributors_add(
    name: Annotated[str, typer.Argument(help="The contributor's name, as readers should see it.")],
    url: Annotated[str, typer.Argument(help="The blog's homepage (or its feed).")],
    feed: Annotated[
        str | None, typer.Option(help="The feed address, if discovery cannot find it.")
    ] = None,
    all_posts: Annotated[
        bool,
        typer.Option(
            "--all-posts", help="A blog for this event only: every post in the dates counts."
        ),
    ] = False,
) -> None:
    """Register a blog: find its feed (and label feeds for the event's tags) and check it reads.

    Example: aggregator contributors add "Patrick Wood" https://patrickwood.example.org/
    """
    with aggregator() as agg:
        result = agg.add_contributor(name, url, feed=feed, all_posts=all_posts)
    for added in result.feeds:
        kind = "feed" if added.kind is FeedKind.MAIN else "label feed"
        say(f"Added {kind} {added.url} — “{added.title or 'untitled'}”, {added.entries} entries")


@contributors_app.command("list")
@friendly
def contributors_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show every contributor and their feeds."""
    with aggregator() as agg:
        people = agg.contributors()
    if as_json:
        data = [
            {
                "name": c.name,
                "homepage": c.homepage,
                "all_posts": c.all_posts,
                "discovery_error": c.discovery_error,
                "feeds": [{"url": f.url, "kind": f.kind, "title": f.title} for f in c.feeds],
            }
            for c in people
        ]
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if not people:
        say("No contributors yet. Add one with: aggregator contributors add NAME URL")
        return
    from .cli_tables import contributors_table, print_table

    print_table(contributors_table(people))


@contributors_app.command("remove")
@friendly
def contributors_remove(name: str) -> None:
    """Remove a contributor, their feeds and their posts, and republish."""
    with aggregator() as agg:
        removed = agg.remove_contributor(name)
    say(f"Removed {name} and {removed} post(s).")


@contributors_app.command("import")
@friendly
def contributors_import(file: Path) -> None:
    """Register every feed listed in an OPML file."""
    with aggregator() as agg:
        added, problems = agg.import_opml(file)
    for result in added:
        say(f"Added {result.contributor}")
    for problem in problems:
        say(f"skipped {problem}", err=True)
    say(f"{len(added)} added, {len(problems)} skipped.")


@contributors_app.command("export")
@friendly
def contributors_export(
    file: Annotated[
        Path | None, typer.Argument(help="Write here instead of standard output.")
    ] = None,
) -> None:
    """Write the registered feeds as OPML."""
    with aggregator() as agg:
        data = agg.export_opml(file)
    if file is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        say(f"Wrote {file}")


@app.command()
@friendly
def poll(
    all_feeds: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Also poll feeds that are not due yet "
            "(still honours Retry-After; skips gone or paused "
            "feeds).",
        ),
    ] = False,
) -> None:
    """Fetch due feeds once and store new event posts. SIGTERM stops it after the feeds
    in progress, freeing the rest for other workers."""
    from .cli_tables import poll_with_progress

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with aggregator() as agg:
        summary = poll_with_progress(agg, include_not_due=all_feeds, stop=stop)
    for result in summary.results:
        if result.outcome is PollOutcome.FAILED:
            say(f"failed: {result.url}: {result.error}", err=True)
    say(summary.line())


@app.command()
@friendly
def publish() -> None:
    """Write feed.atom, index.html and contributors.opml."""
    with aggregator() as agg:
        paths = agg.publish()
    for path in paths:
        say(f"Wrote {path}")


@app.command()
@friendly
def status() -> None:
    """One row per feed: last fetch, result, errors in a row, next try, posts kept; then
    the workers alive and the feeds each is polling."""
    from .cli_tables import (
        RICH_TABLE_MAX_ROWS,
        STATUS_COLUMNS,
        plain_table,
        print_table,
        rich_status,
        status_rows,
        workers_lines,
    )

    with aggregator() as agg:
        rows = status_rows(agg.status())
        workers, now = agg.workers(), agg.now()
    if not rows:
        say("No feeds yet. Add one with: aggregator contributors add NAME URL")
    elif sys.stdout.isatty() and len(rows) <= RICH_TABLE_MAX_ROWS:
        print_table(rich_status(rows))
    else:
        say(plain_table(STATUS_COLUMNS, rows))
    say(workers_lines(workers, now))


@posts_app.command("add")
@friendly
def posts_add(
    url: Annotated[str, typer.Argument(help="The page's address.")],
    contributor: Annotated[
        str | None, typer.Option(help="Whose post it is (default: the page's author).")
    ] = None,
) -> None:
    """Add a post that has no feed (a LinkedIn article, a news story) by its address: its
    title, author, date and summary are read from the page; then republish."""
    with aggregator() as agg:
        added = agg.add_post(url, contributor)
    if not added.new:
        say(f"Already in the feed: “{added.title}” (nothing added).")
        return
    day = f", dated {added.published:%-d %B %Y}" if added.published else ""
    say(f"Added “{added.title}” by {added.contributor}{day}; the outputs are republished.")


@posts_app.command("hide")
@friendly
def posts_hide(url: Annotated[str, typer.Argument(help="The post's link.")]) -> None:
    """Hide a post from the feed, the page and digests (reversible with `posts show`)."""
    with aggregator() as agg:
        agg.hide_post(url, True)
    say(f"Hidden: {url}; the outputs are republished without it.")


@posts_app.command("show")
@friendly
def posts_show(url: Annotated[str, typer.Argument(help="The post's link.")]) -> None:
    """Show a hidden post again."""
    with aggregator() as agg:
        agg.hide_post(url, False)
    say(f"Shown again: {url}; the outputs are republished with it.")


@feeds_app.command("pause")
@friendly
def feeds_pause(url: str) -> None:
    """Stop polling a feed until it is resumed."""
    with aggregator() as agg:
        agg.set_paused(url, True)
    say(f"Paused {url}")


@feeds_app.command("resume")
@friendly
def feeds_resume(url: str) -> None:
    """Poll a paused or gone feed again, from the next poll on."""
    with aggregator() as agg:
        agg.set_paused(url, False)
    say(f"Resumed {url}")


@app.command()
@friendly
def explain(
    url: Annotated[str, typer.Argument(help="The post's address, in any form.")],
) -> None:
    """Is this post in the feed? If not, exactly why and what to do: from what is stored
    and, when it is not stored, from a fresh read of its blog's feed."""
    with aggregator() as agg:
        answer = agg.explain(url)
    for line in answer.lines(organiser=True):
        say(line)


@app.command()
@friendly
def digest(
    date: Annotated[
        str | None, typer.Option(help="The local date YYYY-MM-DD (default: today).")
    ] = None,
    preview: Annotated[
        Path | None, typer.Option(help="Write the HTML to FILE and send nothing.")
    ] = None,
) -> None:
    """Send the daily digest to every subscriber not yet served for that date."""
    import datetime as dt

    try:
        day = dt.date.fromisoformat(date) if date else None
    except ValueError:
        raise AggregatorError(f"--date {date!r}: use YYYY-MM-DD") from None
    with aggregator() as agg:
        if preview is not None:
            say(f"Wrote preview {agg.preview_digest(preview, day)}")
            return
        report = agg.send_digest(day)
    for email, reason in report.failed:
        say(f"failed: {email}: {reason}", err=True)
    for email, reason in report.queued:
        say(f"waiting in the outbox: {email}: {reason}", err=True)
    say(report.line())


@app.command()
@friendly
def outbox() -> None:
    """Send the confirmation and alert emails waiting in the outbox (the worker does this
    every minute; run it from cron when there is no worker)."""
    with aggregator() as agg:
        report = agg.send_outbox()
    for failure in report.failed:
        say(f"failed: {failure}", err=True)
    say(report.line())
    if report.failed and not report.sent:
        raise typer.Exit(1)  # the mail server took nothing: let cron's monitoring see it


# the subscribers and organisers commands live in cli_people.py; run, serve and demo
# in cli_run.py
from . import cli_people as _cli_people  # noqa: E402, F401
from . import cli_run as _cli_run  # noqa: E402, F401


def main() -> None:
    app()
