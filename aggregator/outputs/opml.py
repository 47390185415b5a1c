"""OPML 2.0 export and import of the registered feeds."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..errors import AggregatorError
from ..states import FeedKind

if TYPE_CHECKING:
    from ..storage.feeds import ContributorRow

T = TypeVar("T")


@dataclass(frozen=True)
class OpmlEntry:
    name: str
    homepage: str
    feed_url: str
    all_posts: bool = False


def entries_of(contributors: list[ContributorRow]) -> list[OpmlEntry]:
    """One entry per contributor's main feed."""
    return [
        OpmlEntry(c.name, c.homepage, f.url, c.all_posts)
        for c in contributors
        for f in c.feeds
        if f.kind is FeedKind.MAIN
    ]


def render_opml(title: str, entries: list[OpmlEntry], now: dt.datetime) -> bytes:
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now)
    body = ET.SubElement(root, "body")
    for entry in entries:
        attrs = {
            "type": "rss",
            "text": entry.name,
            "title": entry.name,
            "xmlUrl": entry.feed_url,
            "htmlUrl": entry.homepage,
        }
        if entry.all_posts:
            attrs["allPosts"] = "true"
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def import_all(path: Path, add: Callable[..., T]) -> tuple[list[T], list[str]]:
    """`add` (Aggregator.add_contributor) every feed of an OPML file: what was added, and
    one line per feed that could not be."""
    added, problems = [], []
    for e in read_opml(path):
        try:
            added.append(add(e.name, e.homepage, feed=e.feed_url, all_posts=e.all_posts))
        except AggregatorError as error:
            problems.append(f"{e.name}: {error}")
    return added, problems


def read_opml(path: Path) -> list[OpmlEntry]:
    """Every outline with an xmlUrl, nested folders included."""
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        raise AggregatorError(f"{path}: no such file") from None
    except ET.ParseError as e:
        raise AggregatorError(f"{path}: not a valid OPML file ({e})") from None
    entries = []
    for outline in tree.iter("outline"):
        feed_url = (outline.get("xmlUrl") or "").strip()
        if not feed_url:
            continue
        name = (outline.get("title") or outline.get("text") or feed_url).strip()
        entries.append(
            OpmlEntry(
                name=name,
                homepage=(outline.get("htmlUrl") or "").strip(),
                feed_url=feed_url,
                all_posts=(outline.get("allPosts") or "").lower() == "true",
            )
        )
    return entries
