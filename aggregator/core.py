"""The `Aggregator`: the one object every front end (CLI, worker, web app) calls.

It holds the settings, the storage and the clock, and wires the pipeline stages
together. It makes no decisions of its own beyond orchestration.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from .config import Settings
from .errors import AggregatorError, DiscoveryError, DuplicateFeedError, FeedError
from .outputs import digest as digests
from .outputs.files import write_atomic
from .outputs.mail import send_one, simple_message
from .outputs.opml import OpmlEntry, read_opml, render_opml
from .outputs.publish import PageDigest, write_outputs
from .pipeline.discover import FoundFeed, discover, find_label_feeds
from .pipeline.fetch import FetchLimits, HostGate, fetch, make_client
from .pipeline.ingest import Batcher, PollContext, Recorder, poll_feed
from .pipeline.match import EventRules
from .pipeline.parse import parse_feed
from .pipeline.parsepool import make_parser
from .records import FeedToFetch, FeedUpdateResult, PollSummary
from .storage import Storage
from .storage.feeds import ContributorRow, FeedRow

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class AddedFeed:
    url: str
    kind: str
    title: str
    entries: int


@dataclass(frozen=True)
class AddResult:
    contributor: str
    feeds: list[AddedFeed]


class Aggregator:
    def __init__(self, settings: Settings, *, clock: Clock = system_clock):
        self.settings = settings
        self.clock = clock
        self.storage = Storage.open(settings.database_url)
        settings.output_dir.mkdir(parents=True, exist_ok=True)
        event = settings.event
        self.rules = EventRules.build(
            event.tags, event.keywords, event.collect_from, event.collect_until, event.tz
        )
        polling = settings.polling
        self.limits = FetchLimits(
            timeout_seconds=polling.timeout_seconds,
            max_bytes=polling.max_feed_bytes,
            allow_private_addresses=polling.allow_private_addresses,
            per_host_concurrency=polling.per_host_concurrency,
            per_host_per_second=polling.per_host_per_second,
            user_agent=f"event-aggregator (+{event.site_url})",
        )
        self._sync_seeds()

    def close(self) -> None:
        self.storage.close()

    def __enter__(self) -> Aggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> dt.datetime:
        return self.clock()

    # ---- contributors ----

    def _sync_seeds(self) -> None:
        """Register the config's [[contributors]]; their feeds are discovered at the next poll."""
        feeds = self.storage.feeds
        for seed in self.settings.contributors:
            if feeds.contributor_id(seed.name) is not None:
                continue
            contributor_id = feeds.add_contributor(seed.name, seed.url, seed.all_posts, self.now())
            if seed.feed and not feeds.feed_exists(seed.feed):
                feeds.add_feed(contributor_id, seed.feed, "main", "", self.now())

    def add_contributor(
        self, name: str, url: str, *, feed: str | None = None, all_posts: bool = False
    ) -> AddResult:
        """Discover (or take) the feed, check that it parses, store it with any label feeds."""
        return asyncio.run(self._add_contributor(name, url, feed, all_posts))

    async def _add_contributor(
        self, name: str, url: str, feed_url: str | None, all_posts: bool
    ) -> AddResult:
        async with make_client(4, self.limits) as client:
            gate = HostGate(self.limits.per_host_concurrency, self.limits.per_host_per_second)
            main = await self._find_main_feed(client, gate, url, feed_url)
            if self.storage.feeds.feed_exists(main.url):
                raise DuplicateFeedError(f"the feed {main.url} is already registered")
            labels = []
            if not all_posts:
                labels = await find_label_feeds(
                    client, main, main.parsed.generator, self.settings.event.tags, self.limits, gate
                )
        feeds = self.storage.feeds
        contributor_id = feeds.add_contributor(name, url or main.url, all_posts, self.now())
        feeds.set_discovery_error(contributor_id, None)
        added = []
        for kind, found in [("main", main)] + [("label", f) for f in labels]:
            try:
                feeds.add_feed(contributor_id, found.url, kind, found.parsed.title, self.now())
            except DuplicateFeedError:
                if kind == "main":
                    raise
                continue
            added.append(AddedFeed(found.url, kind, found.parsed.title, len(found.parsed.entries)))
        return AddResult(name, added)

    async def _find_main_feed(self, client, gate, url: str, feed_url: str | None) -> FoundFeed:
        if not feed_url:
            return await discover(client, url, self.limits, gate)
        try:
            result = await fetch(client, feed_url, self.limits, gate=gate)
            parsed = parse_feed(result.content, result.url, result.content_type)
        except FeedError as e:
            raise DiscoveryError(f"cannot use the feed {feed_url}: {e.reason}") from None
        return FoundFeed(result.moved_to or result.url, parsed)

    def contributors(self) -> list[ContributorRow]:
        return self.storage.feeds.contributors()

    def contributors_without_feeds(self) -> list[ContributorRow]:
        return [
            ContributorRow(id=i, name=n, homepage=h, all_posts=False, discovery_error=e)
            for i, n, h, e in self.storage.feeds.contributors_without_feeds(with_errors=True)
        ]

    def remove_contributor(self, name: str) -> int:
        return self.storage.feeds.remove_contributor(name)

    def opml_entries(self) -> list[OpmlEntry]:
        return [
            OpmlEntry(c.name, c.homepage, f.url, c.all_posts)
            for c in self.contributors()
            for f in c.feeds
            if f.kind == "main"
        ]

    def export_opml(self, path: Path | None = None) -> bytes:
        data = render_opml(
            f"{self.settings.event.name}: contributors", self.opml_entries(), self.now()
        )
        if path is not None:
            write_atomic(path, data)
        return data

    def import_opml(self, path: Path) -> tuple[list[AddResult], list[str]]:
        """Register every feed of an OPML file; returns what was added and one line per failure."""
        added, problems = [], []
        for entry in read_opml(path):
            try:
                added.append(
                    self.add_contributor(
                        entry.name, entry.homepage, feed=entry.feed_url, all_posts=entry.all_posts
                    )
                )
            except AggregatorError as e:
                problems.append(f"{entry.name}: {e}")
        return added, problems

    # ---- polling ----

    def update_feeds(
        self,
        *,
        include_not_due: bool = False,
        on_start: Callable[[int], None] | None = None,
        on_result: Callable[[FeedUpdateResult], None] | None = None,
    ) -> PollSummary:
        """One polling cycle over due feeds (all feeds with include_not_due)."""
        return asyncio.run(
            self.update_feeds_async(
                include_not_due=include_not_due, on_start=on_start, on_result=on_result
            )
        )

    async def update_feeds_async(
        self,
        *,
        include_not_due: bool = False,
        on_start: Callable[[int], None] | None = None,
        on_result: Callable[[FeedUpdateResult], None] | None = None,
    ) -> PollSummary:
        polling = self.settings.polling
        summary = PollSummary()
        with contextlib.ExitStack() as stack:
            processor = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="process"))
            async with make_client(polling.concurrency, self.limits) as client:
                gate = HostGate(self.limits.per_host_concurrency, self.limits.per_host_per_second)
                await self._discover_pending(client, gate)
                now = self.now()
                targets = self.storage.feeds.due(now, include_not_due=include_not_due)
                parser = stack.enter_context(make_parser(processor, len(targets)))
                if on_start:
                    on_start(len(targets))
                ctx = PollContext(
                    storage=self.storage,
                    rules=self.rules,
                    client=client,
                    limits=self.limits,
                    gate=gate,
                    interval=dt.timedelta(minutes=polling.interval_minutes),
                    max_backoff=dt.timedelta(hours=polling.max_backoff_hours),
                    now=now,
                    processor=processor,
                    recorder=Recorder(self.storage),
                    parser=parser,
                    batcher=Batcher(),
                )
                # a slot is held until the feed is processed: at most `concurrency` bodies
                # wait in memory at once
                slots = asyncio.Semaphore(polling.concurrency)

                async def one(target: FeedToFetch) -> FeedUpdateResult:
                    async with slots:
                        try:
                            return await poll_feed(target, ctx)
                        except Exception as e:  # a bug must not stop the other feeds
                            log.exception("polling %s failed unexpectedly", target.url)
                            return FeedUpdateResult(
                                target.feed_id,
                                target.url,
                                "failed",
                                error=f"internal error: {type(e).__name__}: {e}"[:300],
                            )

                try:
                    for next_done in asyncio.as_completed([one(t) for t in targets]):
                        result = await next_done
                        summary.add(result)
                        if on_result:
                            on_result(result)
                finally:
                    await ctx.run(ctx.recorder.flush)
        return summary

    async def _discover_pending(self, client, gate: HostGate) -> None:
        """Seeded contributors have no feed until discovery succeeds."""
        for contributor_id, name, homepage in self.storage.feeds.contributors_without_feeds():
            try:
                found = await discover(client, homepage, self.limits, gate)
                self.storage.feeds.add_feed(
                    contributor_id, found.url, "main", found.parsed.title, self.now()
                )
                labels = await find_label_feeds(
                    client,
                    found,
                    found.parsed.generator,
                    self.settings.event.tags,
                    self.limits,
                    gate,
                )
                for label in labels:
                    if not self.storage.feeds.feed_exists(label.url):
                        self.storage.feeds.add_feed(
                            contributor_id, label.url, "label", label.parsed.title, self.now()
                        )
                self.storage.feeds.set_discovery_error(contributor_id, None)
            except AggregatorError as e:
                log.warning("no feed for %s: %s", name, e)
                self.storage.feeds.set_discovery_error(contributor_id, str(e))

    # ---- publishing and health ----

    def publish(self) -> list[Path]:
        posts = self.storage.posts.latest(self.settings.publish.max_entries)
        archive = [
            PageDigest(date, f"digests/{date.isoformat()}.html", count)
            for date, count in self.storage.posts.digests()
            if (self.settings.output_dir / "digests" / f"{date.isoformat()}.html").exists()
        ]
        return write_outputs(self.settings, posts, self.opml_entries(), self.now(), archive)

    def status(self) -> list[FeedRow]:
        return self.storage.feeds.feed_rows(with_posts=True)

    def hide_post(self, url: str, hidden: bool = True) -> int:
        return self.storage.posts.set_hidden(url, hidden)

    def set_paused(self, url: str, paused: bool) -> None:
        self.storage.feeds.set_paused(url, paused)

    # ---- digest ----

    def local_today(self) -> dt.date:
        return self.now().astimezone(self.settings.event.tz).date()

    def add_subscriber(self, email: str) -> tuple[str, bool]:
        """Validate (syntax only) and add; returns the normalised address and whether it is new."""
        try:
            normalised = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as e:
            raise AggregatorError(f"{email!r} is not a valid email address: {e}") from None
        return normalised, self.storage.subscribers.add(normalised, self.now())

    def normalise_email(self, email: str) -> str:
        try:
            return validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as e:
            raise AggregatorError(f"{email!r} is not a valid email address: {e}") from None

    def request_subscription(self, email: str, confirm_url: Callable[[str], str]) -> None:
        """Double opt-in: email a confirmation link, unless the address already subscribes.

        Says nothing about whether the address was known (the caller shows one answer)."""
        address = self.normalise_email(email)
        token = self.storage.subscribers.request(address, self.now())
        if token is None:
            return
        text = (
            f"Someone (hopefully you) asked to get the daily {self.settings.event.name} digest "
            f"at this address.\n\nTo confirm, open:\n{confirm_url(token)}\n\n"
            "If it was not you, ignore this email: nothing will be sent.\n"
        )
        send_one(
            self.settings,
            simple_message(
                self.settings,
                address,
                f"Confirm your {self.settings.event.name} digest",
                text,
                self.now(),
            ),
        )

    def confirm_subscription(self, token: str) -> str | None:
        return self.storage.subscribers.confirm(token)

    def unsubscribe(self, token: str) -> str | None:
        return self.storage.subscribers.unsubscribe_token(token, self.now())

    def remove_subscriber(self, email: str) -> None:
        with contextlib.suppress(EmailNotValidError):
            email = validate_email(email, check_deliverability=False).normalized
        self.storage.subscribers.remove(email, self.now())

    def subscribers(self) -> list:  # list[SubscriberRow]
        return self.storage.subscribers.all()

    def send_digest(self, date: dt.date | None = None) -> digests.DigestReport:
        """Send the digest for a local date (default today) to everyone not yet served."""
        report = digests.send_digest(
            self.storage, self.settings, date or self.local_today(), self.now()
        )
        if report.posts:
            self.publish()  # index.html lists the archived digest
        return report

    def preview_digest_html(self, date: dt.date | None = None) -> str:
        return digests.preview(self.storage, self.settings, date or self.local_today(), self.now())

    def preview_digest(self, path: Path, date: dt.date | None = None) -> Path:
        write_atomic(path, self.preview_digest_html(date).encode("utf-8"))
        return path

    # ---- organiser alerts ----

    def health_problems(self) -> list[str]:
        """Feeds failing for a day or more, and contributors with nothing for the event yet."""
        now = self.now()
        day = dt.timedelta(days=1)
        problems = []
        posts_by_contributor: dict[str, int] = {}
        registered: dict[str, dt.datetime] = {}
        for row in self.status():
            posts_by_contributor[row.contributor] = (
                posts_by_contributor.get(row.contributor, 0) + row.posts
            )
            registered[row.contributor] = min(
                registered.get(row.contributor, row.created_at), row.created_at
            )
            if row.paused or row.last_result != "failed":
                continue
            failing_since = row.last_success_at or row.created_at
            if row.gone or now - failing_since >= day:
                problems.append(
                    f"{row.contributor}: {row.url} has failed since "
                    f"{failing_since:%Y-%m-%d %H:%M} UTC: {row.last_error}"
                )
        for name, count in sorted(posts_by_contributor.items()):
            if count == 0 and now - registered[name] >= day:
                problems.append(
                    f"{name} has published nothing labelled for {self.settings.event.name} "
                    f"since being registered on {registered[name]:%Y-%m-%d}"
                )
        return problems

    def send_health_alert(self) -> str:
        """Email the organisers a list of problems, at most once a day."""
        today = self.local_today().isoformat()
        web = self.storage.web
        if web.get_meta("health_alert_date") == today:
            return "organiser alert: already sent today"
        problems = self.health_problems()
        organisers = web.organiser_emails()
        if not problems or not organisers:
            return "organiser alert: nothing to report"
        text = (
            f"Feeds of {self.settings.event.name} that need a look:\n\n"
            + "\n".join(f"- {p}" for p in problems)
            + f"\n\nThe dashboard: {self.settings.event.site_url}admin\n"
        )
        for address in organisers:
            send_one(
                self.settings,
                simple_message(
                    self.settings,
                    address,
                    f"{self.settings.event.name}: {len(problems)} feed problem(s)",
                    text,
                    self.now(),
                ),
            )
        web.set_meta("health_alert_date", today)
        return f"organiser alert: {len(problems)} problem(s) sent to {len(organisers)} organiser(s)"
