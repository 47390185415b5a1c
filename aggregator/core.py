"""The `Aggregator`: the one door every front end (CLI, worker, web app, demo) goes
through.

It holds the settings, the storage and the clock, and delegates: polling to
`pipeline.poll`, registering blogs to `pipeline.registration`, feed health to
`health`, files and emails to `outputs`. Its methods are a few lines each; the rules
live in the modules they call, once. Storage is its own (front ends never touch it).

Heavy modules (the HTTP client, feed parsers, feedgen, Jinja) are imported by the
methods that need them, so `aggregator status` does not pay for `poll`'s imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from . import auth, health
from .config import Settings
from .errors import AggregatorError, ConfigError, FieldError
from .people import People
from .pipeline.match import EventRules
from .records import (
    AddResult,
    FeedUpdateResult,
    PollSummary,
    RegistrationPreview,
)
from .site import Site
from .states import RegistrationState
from .storage import Storage
from .storage.db import refuse_published_database

if TYPE_CHECKING:
    from .outputs.digest import DigestReport
    from .outputs.opml import OpmlEntry
    from .outputs.publish import PageDigest
    from .pipeline.explain import Answer
    from .pipeline.fetch import FetchLimits
    from .pipeline.manual import AddedPost
    from .pipeline.websub import WebSub
    from .storage.feeds import ContributorRow
    from .storage.leases import WorkerRow
    from .storage.posts import PostView
    from .storage.registrations import RegistrationRow
    from .workers import WorkerSession

T = TypeVar("T")
Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Aggregator(People, Site):
    def __init__(self, settings: Settings, *, clock: Clock = system_clock):
        self.settings = settings
        self.clock = clock
        self._worker: WorkerSession | None = None
        #: one poll at a time in a process: its threads share one worker session
        self._polling = threading.Lock()
        refuse_published_database(settings.database_url, settings.output_dir)
        #: for the aggregator's own modules (and tests): front ends call methods instead
        self.storage = Storage.open(settings.database_url)
        try:
            settings.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(
                f"publish.output_dir: cannot create {settings.output_dir} ({e.strerror})"
            ) from None
        event = settings.event
        self.rules = EventRules.build(
            event.tags, event.keywords, event.collect_from, event.collect_until, event.tz
        )
        self.storage.feeds.sync_seeds(settings.contributors, self.now())

    @functools.cached_property
    def limits(self) -> FetchLimits:
        from .pipeline.poll import fetch_limits

        return fetch_limits(self.settings)

    def close(self) -> None:
        self.storage.close()

    def __enter__(self) -> Aggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> dt.datetime:
        return self.clock()

    def local_today(self) -> dt.date:
        return self.now().astimezone(self.settings.event.tz).date()

    # ---- contributors ----

    def add_contributor(
        self, name: str, url: str, *, feed: str | None = None, all_posts: bool = False
    ) -> AddResult:
        """Discover (or take) the feed, check that it parses, store it with any label feeds."""
        from .pipeline import registration

        tags, labels = self.settings.event.tags, not all_posts
        found = registration.find_blog(
            self.storage, self.limits, tags, url, feed, with_labels=labels
        )
        blog = asyncio.run(found)
        contributor_id = self.storage.feeds.add_contributor(
            name, url or blog.main.url, all_posts, self.now()
        )
        return AddResult(
            name, registration.store_found(self.storage, contributor_id, blog, self.now())
        )

    def contributors(self) -> list[ContributorRow]:
        return self.storage.feeds.contributors()

    def remove_contributor(self, name: str) -> int:
        """Remove a contributor with their feeds and posts, and republish, so the outputs
        (and every `serve` process's page) follow at once; returns how many posts went."""
        removed = self.storage.feeds.remove_contributor(name)
        self.publish()
        return removed

    def opml_entries(self) -> list[OpmlEntry]:
        from .outputs.opml import entries_of

        return entries_of(self.contributors())

    def export_opml(self, path: Path | None = None) -> bytes:
        from .outputs.files import write_atomic
        from .outputs.opml import render_opml

        title = f"{self.settings.event.name}: contributors"
        data = render_opml(title, self.opml_entries(), self.now())
        if path is not None:
            write_atomic(path, data)
        return data

    def import_opml(self, path: Path) -> tuple[list[AddResult], list[str]]:
        """Register every feed of an OPML file; returns what was added and one line per failure."""
        from .outputs.opml import import_all

        return import_all(path, self.add_contributor)

    # ---- polling, publishing, health ----

    @contextlib.contextmanager
    def working(self, command: str) -> Iterator[WorkerSession]:
        """Be a worker for the block (re-entrant; on SQLite, the only one: see `workers`)."""
        if self._worker is not None:
            yield self._worker
            return
        from .workers import WorkerSession

        with WorkerSession(self.storage, self.settings, self.clock, command) as worker:
            self._worker = worker
            try:
                yield worker
            finally:
                self._worker = None

    def update_feeds(
        self,
        *,
        include_not_due: bool = False,
        stop: threading.Event | None = None,
        on_start: Callable[[int], None] | None = None,
        on_result: Callable[[FeedUpdateResult], None] | None = None,
    ) -> PollSummary:
        """One polling cycle over the due feeds this worker can claim (every feed with
        include_not_due); `stop` ends it early, releasing what is not started."""
        feeds = self.storage.feeds
        if not feeds.contributors_without_feeds() and not feeds.due(
            self.now(), include_not_due=include_not_due
        ):
            if on_start:
                on_start(0)
            return PollSummary()  # without loading the HTTP client and the parsers
        from .pipeline.poll import run_poll

        if not self._polling.acquire(blocking=False):
            raise AggregatorError("a poll is running in this process already; wait for it")
        try:
            with self.working("poll") as worker:
                poll = run_poll(
                    *(self.storage, self.settings, self.rules, self.limits, self.now, worker),
                    include_not_due=include_not_due,
                    stop=stop,
                    on_start=on_start,
                    on_result=on_result,
                )
                return asyncio.run(poll)
        finally:
            self._polling.release()

    def run_job(self, name: str, action: Callable[[], T], *, wanted: bool = False) -> T | None:
        """Run a job on one worker at a time (None when another has it); with `wanted`, only
        if asked for (`want_job`) since it last ran, and again if asked for meanwhile."""
        jobs, result = self.storage.jobs, None
        with self.working("run") as worker:
            while jobs.claim(name, worker.id, self.now(), worker.until(), wanted=wanted):
                try:
                    result = action()
                finally:
                    jobs.finish(name, worker.id, self.now())
                if not wanted:
                    break
        return result

    def want_job(self, name: str) -> None:
        self.storage.jobs.want(name)

    def job_done_for(self, name: str) -> str | None:
        return self.storage.jobs.done_for(name)

    @functools.cached_property
    def websub(self) -> WebSub:
        """Posts pushed by feeds' hubs (W3C WebSub): requests, verifications, content."""
        from .pipeline.websub import WebSub

        return WebSub(self.storage, self.settings, self.rules, self.limits, self.now)

    def publish(self) -> list[Path]:
        """Write feed.atom, index.html and contributors.opml."""
        from .outputs.publish import write_outputs

        posts = self.storage.posts.latest(self.settings.publish.max_entries)
        return write_outputs(
            self.settings, posts, self.opml_entries(), self.now(), self.digest_archive()
        )

    def status(self) -> list[health.FeedHealth]:
        """Every feed's health, then contributors whose feed is not found yet."""
        rows = [health.of_feed(row) for row in self.storage.feeds.feed_rows()]
        return rows + [
            health.of_contributor_without_feed(c)
            for c in self.storage.feeds.contributors_without_feeds()
        ]

    def attention(self, rows: list[health.FeedHealth] | None = None) -> list[health.Attention]:
        """What needs an organiser, worst first (see `health.attention`)."""
        label = next(iter(self.settings.event.tags), self.settings.event.name)
        return health.attention(self.status() if rows is None else rows, label)

    def workers(self) -> list[tuple[WorkerRow, list[str]]]:
        """The workers alive (heard from within a lease), each with the feeds it holds."""
        stale = self.now() - dt.timedelta(seconds=self.settings.polling.lease_seconds)
        return self.storage.leases.alive(stale)

    def health_problems(self) -> list[str]:
        """Feeds failing for a day or more, and contributors with nothing for the event yet."""
        rows = self.storage.feeds.feed_rows()
        return health.problems(rows, self.now(), self.settings.event.name)

    def set_paused(self, url: str, paused: bool) -> None:
        self.storage.feeds.set_paused(url, paused)

    # ---- posts ----

    def add_post(self, url: str, contributor: str | None = None) -> AddedPost:
        """Store a page without a feed (read through the feeds' guarded client) as an event
        post, deduplicated like any other, and republish (see `pipeline.manual`)."""
        from .pipeline.manual import add_page

        page = add_page(self.storage, self.rules, self.limits, url, contributor, self.now())
        added = asyncio.run(page)
        self.publish()
        return added

    def hide_post(self, url: str, hidden: bool = True) -> int:
        """Hide a post (or show it again) and republish, so the outputs follow at once."""
        count = self.storage.posts.set_hidden(url, hidden)
        self.publish()
        return count

    def posts_page(
        self, page: int, per_page: int, *, include_hidden: bool = False
    ) -> tuple[list[PostView], bool]:
        """Posts of page `page` (from 1), newest first, and whether more pages follow."""
        posts = self.storage.posts.page(
            per_page + 1, (max(1, page) - 1) * per_page, include_hidden=include_hidden
        )
        return posts[:per_page], len(posts) > per_page

    def post_count(self) -> int:
        return self.storage.posts.count()

    # ---- digest ----

    def send_digest(self, date: dt.date | None = None) -> DigestReport:
        """Send the digest for a local date (default today) to everyone not yet served."""
        from .outputs import digest

        date = date or self.local_today()
        report = digest.send_digest(self.storage, self.settings, date, self.now())
        # every subscriber served or given up on: no worker needs to catch it up
        self.storage.jobs.mark_done("digest", date.isoformat())
        if report.posts:
            self.publish()  # index.html lists the archived digest
        return report

    def digest_outlook(self, date: dt.date | None = None) -> tuple[dt.date, int, int]:
        """(date, posts it would hold, subscribers still to get it): what sending the
        digest now would do, for the dashboard's confirmation step."""
        from .outputs.digest import upcoming

        date = date or self.local_today()
        posts = upcoming(self.storage, date, self.now())
        return date, len(posts), len(self.storage.subscribers.awaiting_delivery(date))

    def preview_digest_html(self, date: dt.date | None = None) -> str:
        from .outputs import digest

        return digest.preview(self.storage, self.settings, date or self.local_today(), self.now())

    def preview_digest(self, path: Path, date: dt.date | None = None) -> Path:
        from .outputs.files import write_atomic

        write_atomic(path, self.preview_digest_html(date).encode("utf-8"))
        return path

    def digest_archive(self) -> list[PageDigest]:
        """Digests made so far whose archived copy exists, newest first."""
        from .outputs.publish import archived

        return archived(self.settings.output_dir, self.storage.posts.digests())

    def send_health_alert(self) -> str:
        """Queue an email to the organisers listing problems, at most once a day (however
        many workers try), and send what the outbox holds."""
        from .outputs.notices import queue_health_alert

        organisers = self.storage.accounts.organiser_emails()
        queued, line = queue_health_alert(
            self.storage, self.settings, self.health_problems, organisers, self.now()
        )
        return f"{line}; {self.send_outbox().line()}" if queued else line

    # ---- registrations through the public form ----

    def register_blog(self, name: str, url: str, email: str) -> RegistrationPreview:
        """Find the blog's feed and keep it for an organiser's approval. A FieldError
        names the field at fault and says, in plain words, what to do."""
        from .pipeline.registration import latest_entries, plain_reason, preview
        from .urls import canonical_url, link_key

        name, url = name.strip(), url.strip()
        if not name:
            raise FieldError("name", "Give your name, as readers should see it.")
        if not url:
            raise FieldError("url", "Give your blog's address, such as https://yourblog.org.")
        scheme_typed = "://" in url
        if not scheme_typed:
            url = "https://" + url  # "myblog.wordpress.com" is what people type
        try:
            address = auth.normalise_email(email)
        except AggregatorError as e:
            raise FieldError(
                "email", "Check your email address: it should look like name@example.org.", str(e)
            ) from None
        key = link_key(canonical_url(url))
        for known in self.storage.feeds.contributors():
            if key and link_key(canonical_url(known.homepage)) == key:
                raise FieldError("url", f"This blog is already included, as {known.name}.")
        try:
            url, found = asyncio.run(preview(self.limits, url, scheme_typed=scheme_typed))
        except AggregatorError as e:
            raise FieldError("url", plain_reason(str(e)), str(e)) from None
        if self.storage.feeds.feed_exists(found.url):
            raise FieldError("url", "This blog's feed is already included: nothing to do.")
        try:
            self.storage.registrations.add(
                name, url, found.url, found.parsed.title, address, self.now()
            )
        except AggregatorError as e:
            raise FieldError("url", f"Thank you, but {e}.") from None
        return RegistrationPreview(found.url, found.parsed.title, latest_entries(found.parsed))

    def registrations(self) -> list[RegistrationRow]:
        """Registrations waiting for an organiser."""
        return self.storage.registrations.all(RegistrationState.PENDING)

    def approve_registration(self, registration_id: int) -> RegistrationRow:
        """Add the contributor, then mark the registration approved: if adding fails the
        registration stays pending, with the reason shown to the organiser."""
        row = self.storage.registrations.pending(registration_id)
        self.add_contributor(row.name, row.homepage, feed=row.feed_url)
        return self.storage.registrations.decide(registration_id, RegistrationState.APPROVED)

    def reject_registration(self, registration_id: int) -> RegistrationRow:
        return self.storage.registrations.decide(registration_id, RegistrationState.REJECTED)

    def explain(self, url: str) -> Answer:
        """Why a post is in the feed, or why not and what to do (see `pipeline.explain`)."""
        from .pipeline.explain import explain

        checked = explain(self.storage, self.settings, self.rules, self.limits, url, self.now())
        return asyncio.run(checked)
