""" "Is my post in?": why a post is in the feed, or exactly why not, in plain words.

From what is stored first (included, since when and in which digest; kept as a copy of
an earlier post; hidden by an organiser), then from the blog it belongs to (waiting for
approval, no feed found, the feed failing) and, when the post is not stored, from a
fresh fetch of that blog's feeds, judged by the same rules as a poll (not in the feed,
outside the collection dates, missing the event's label, or simply not polled since).
Nothing is stored here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config import Settings
from ..errors import FeedError
from ..health import of_feed
from ..records import EntryData
from ..states import FeedState, RegistrationState
from ..storage import Storage
from ..storage.feeds import ContributorRow
from ..text import html_to_text
from ..urls import canonical_url, link_key
from .fetch import FetchLimits, fetch, open_client
from .match import EventRules
from .parse import parse_feed
from .sanitize import sanitize_html


@dataclass(frozen=True)
class Answer:
    """What `explain` and `/check` say: a sentence anyone may read, what to do about it,
    and (for organisers only) a detail the public page leaves out."""

    included: bool
    sentence: str
    todo: str | None = None
    private: str | None = None

    def lines(self, *, organiser: bool) -> list[str]:
        shown = [self.sentence] + ([self.todo] if self.todo else [])
        return shown + ([self.private] if organiser and self.private else [])


def _day(when: dt.datetime, settings: Settings) -> str:
    return when.astimezone(settings.event.tz).strftime("%-d %B %Y, %H:%M")


def _host(url: str) -> str:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
    return host.removeprefix("www.")


def _owner(url: str, people: list[ContributorRow]) -> ContributorRow | None:
    """The contributor whose blog the address is on: same host, longest shared path."""
    host, path = _host(url), urlsplit(url).path
    best, best_len = None, -1
    for person in people:
        for address in [person.homepage, *(f.url for f in person.feeds)]:
            if _host(address) != host:
                continue
            base = urlsplit(address).path.rstrip("/")
            shared = len(base) if path == base or path.startswith(base + "/") else 0
            if shared > best_len:
                best, best_len = person, shared
    return best


async def explain(
    storage: Storage,
    settings: Settings,
    rules: EventRules,
    limits: FetchLimits,
    url: str,
    now: dt.datetime,
) -> Answer:
    key = link_key(canonical_url(url.strip()))
    if key is None:
        return Answer(False, "That is not a web address (it should start with https://).")
    key = key.removeprefix("www.")  # people drop or add it; the rest of the address counts
    found = storage.posts.find(key) or storage.posts.find("www." + key)
    if found is not None:
        post, copy_feed = found
        if post.hidden:
            return Answer(
                False,
                "This post is not shown in the feed.",
                "If you think it should be, write to the organisers.",
                private="An organiser hid it; `aggregator posts show URL` shows it again.",
            )
        if copy_feed is not None:
            return Answer(
                True,
                f"It was taken as a copy of an earlier post, “{post.title}” by "
                f"{post.contributor}, which is shown instead (first seen "
                f"{_day(post.first_seen, settings)}).",
                private=f"The copy came through {copy_feed}.",
            )
        digest = (
            f"It was in the digest of {post.digest_date.strftime('%-d %B %Y')}."
            if post.digest_date
            else "It will be in the next daily digest."
        )
        return Answer(
            True, f"Included since {_day(post.first_seen, settings)}, as “{post.title}”. {digest}"
        )
    people = storage.feeds.contributors()
    person = _owner(url, people)
    if person is None:  # a blog whose feed lives on another host: by its stored posts
        name = storage.posts.contributor_on_host(_host(url))
        person = next((p for p in people if p.name == name), None)
    if person is None:
        return _unregistered(storage, settings, url)
    if not person.feeds:
        reason = person.discovery_error or "not looked for yet"
        return Answer(
            False,
            f"The blog of {person.name} is registered, but its feed was not found yet.",
            "The organisers can give the feed's address: aggregator contributors add NAME URL "
            "--feed FEED.",
            private=f"Why: {reason}.",
        )
    return await _from_the_feed(settings, rules, limits, url, key, person, now)


def _unregistered(storage: Storage, settings: Settings, url: str) -> Answer:
    host = _host(url)
    for waiting in storage.registrations.all(RegistrationState.PENDING):
        if host in (_host(waiting.homepage), _host(waiting.feed_url)):
            return Answer(
                False,
                "The blog is registered and waiting for an organiser's approval.",
                "Its event posts are collected as soon as it is approved.",
            )
    return Answer(
        False,
        "No registered blog has this address.",
        f"If it is yours, register it at {settings.event.site_url}register.",
    )


async def _from_the_feed(
    settings: Settings,
    rules: EventRules,
    limits: FetchLimits,
    url: str,
    key: str,
    person: ContributorRow,
    now: dt.datetime,
) -> Answer:
    """Read the blog's feeds now and judge the entry as a poll would."""
    interval = settings.polling.interval_minutes
    failing = [f for f in person.feeds if of_feed(f).state is FeedState.FAILING]
    errors = []
    async with open_client(2, limits) as (client, gate):
        for feed in person.feeds:
            if feed.paused or feed.gone:  # not polled: not read for a check either
                continue
            try:
                result = await fetch(client, feed.url, limits, gate=gate)
                parsed = parse_feed(result.content, result.url, result.content_type)
            except FeedError as e:
                errors.append(f"{feed.url}: {e.reason}")
                continue
            for entry in parsed.entries:
                if (link_key(canonical_url(entry.link)) or "").removeprefix("www.") == key:
                    return _judge(settings, rules, entry, person, now, interval)
    if errors:
        return Answer(
            False,
            "The blog's feed could not be read just now.",
            "It is read again at every poll; if this goes on, the organisers see it on "
            "their dashboard.",
            private="Why: " + "; ".join(errors),
        )
    note = " (its feed has been failing, too)" if failing else ""
    return Answer(
        False,
        f"The feed of {person.name}'s blog does not list this post{note}.",
        "Feeds carry only the newest posts: a post older than those, or not published yet "
        "(a draft, a scheduled post), is not in it. Check the address, or ask the organisers "
        "to add the post by hand.",
    )


def _judge(
    settings: Settings,
    rules: EventRules,
    entry: EntryData,
    person: ContributorRow,
    now: dt.datetime,
    interval: int,
) -> Answer:
    when = entry.published or entry.updated
    if not rules.in_window(when or now):
        window = " ".join(
            part
            for part in (
                f"from {rules.collect_from.strftime('%-d %B %Y')}" if rules.collect_from else "",
                f"until {rules.collect_until.strftime('%-d %B %Y')}" if rules.collect_until else "",
            )
            if part
        )
        dated = when.astimezone(settings.event.tz).strftime("%-d %B %Y") if when else "today"
        return Answer(
            False,
            f"It is dated {dated}, outside the event's collection dates ({window}).",
        )
    text = html_to_text(sanitize_html(entry.content_html or entry.summary_html, entry.base))
    if not rules.is_event_post(
        all_posts=person.all_posts,
        categories=entry.categories,
        title=entry.title,
        text=text,
        when=when,
    ):
        labels = entry.categories
        had = (
            "its labels are " + " and ".join(", ".join(labels).rsplit(", ", 1))
            if labels
            else "it has no labels"
        )
        tag = settings.event.tags[0] if settings.event.tags else settings.event.name
        return Answer(
            False,
            f"It does not carry the event's label: {had}.",
            f"Add the label {tag}; it will be picked up within {interval} minutes.",
        )
    return Answer(
        False,
        "The feed lists it and it counts as an event post: it has not been read since it appeared.",
        f"It will be picked up within {interval} minutes, at the next poll.",
    )
