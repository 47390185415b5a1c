"""Posts added by hand: event writing that has no feed (a LinkedIn article, a news story
about the week, a platform without RSS), added by its address.

The page is fetched through the feeds' guarded client (same limits, same address
guard), its metadata read with trafilatura (OpenGraph, JSON-LD, `<meta>`, then the
page itself), and the post goes through the poll's own deciding and storing: sanitised,
within the collection dates, and deduplicated, so when the contributor's feed later
carries the same post it stays one post. It is stored under the contributor's "added by
hand" feed, which is never fetched.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from urllib.parse import urlsplit

from dateutil import parser as dateparser

from ..errors import AggregatorError, FeedError
from ..records import EntryData
from ..storage import Storage
from ..text import excerpt
from .decide import decide_post
from .fetch import FetchLimits, fetch, open_client
from .match import EventRules


@dataclass(frozen=True)
class AddedPost:
    title: str
    contributor: str
    published: dt.datetime | None
    #: False when the post was stored already (from a feed, or added before)
    new: bool


def read_page(content: bytes, url: str, content_type: str) -> EntryData:
    """The post a web page describes, from its metadata (pure)."""
    from trafilatura import extract, extract_metadata  # 0.2 s to import: only here

    charset = "utf-8"
    if "charset=" in content_type:
        charset = content_type.split("charset=", 1)[1].split(";")[0].strip() or charset
    try:
        page = content.decode(charset, errors="replace")
    except LookupError:
        page = content.decode("utf-8", errors="replace")
    meta = extract_metadata(
        page,
        default_url=url,
        date_config={"outputformat": "%Y-%m-%dT%H:%M:%S%z", "original_date": True},
    )
    if meta is None or not meta.title:
        raise AggregatorError("the page has no title we can read; is it a web page?")
    summary = meta.description or excerpt(extract(page, output_format="txt") or "", 60)
    published = None
    if meta.date:
        try:
            published = dateparser.isoparse(meta.date)
        except ValueError:
            published = None
        if published is not None and published.tzinfo is None:
            published = published.replace(tzinfo=dt.UTC)
    author = (meta.author or "").split(";")[0].strip()
    return EntryData(
        entry_id=None,
        link=meta.url if meta.url and urlsplit(meta.url).scheme in ("http", "https") else url,
        title=meta.title.strip(),
        author=author,
        content_html=f"<p>{html.escape(summary)}</p>" if summary else "",
        summary_html="",
        base=url,
        categories=tuple(meta.categories or ()) + tuple(meta.tags or ()),
        published=published,
        updated=None,
    )


async def add_page(
    storage: Storage,
    rules: EventRules,
    limits: FetchLimits,
    url: str,
    contributor: str | None,
    now: dt.datetime,
) -> AddedPost:
    url = url.strip()
    if urlsplit(url).scheme not in ("http", "https"):
        raise AggregatorError(f"not a web address: {url!r} (it should start with https://)")
    async with open_client(1, limits) as (client, gate):
        try:
            result = await fetch(client, url, limits, gate=gate)
        except FeedError as e:
            raise AggregatorError(f"cannot read {url}: {e.reason}") from None
    if "html" not in result.content_type.lower():
        raise AggregatorError(f"{url} is not a web page ({result.content_type or 'no type'})")
    entry = read_page(result.content, result.moved_to or result.url, result.content_type)
    intent = decide_post(entry, rules, True, now)  # every post added by hand is an event post
    if intent is None:
        when = entry.published.strftime("%-d %B %Y") if entry.published else "undated"
        raise AggregatorError(f"the page is dated {when}, outside the collection dates")
    name = contributor or entry.author or (urlsplit(url).hostname or url).removeprefix("www.")
    feeds = storage.feeds
    person = feeds.contributor_id(name)
    if person is None:
        site = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}/"
        person = feeds.add_contributor(name, site, False, now)
    feed_id = feeds.manual_feed(person, now)
    counts = storage.posts.store(feed_id, person, [intent], now)
    return AddedPost(intent.title, name, intent.published, new=counts.new > 0)
