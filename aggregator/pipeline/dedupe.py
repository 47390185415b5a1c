"""Identities of posts: canonical links, text fingerprints, per-feed entry keys.

Pure functions (the README's "One post, once"). The storage layer uses these
keys to decide whether an entry is a post it already holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from ..text import normalise_phrase

#: fingerprints of shorter texts would match unrelated posts ("Photo", "")
MIN_FINGERPRINT_CHARS = 80
#: bump when what goes into `content_hash` changes, so stored hashes are not compared across rules
CONTENT_HASH_VERSION = "1"


def text_fingerprint(text: str) -> str | None:
    normalised = normalise_phrase(text)
    if len(normalised) < MIN_FINGERPRINT_CHARS:
        return None
    return hashlib.sha256(normalised.encode()).hexdigest()


def entry_key(
    entry_id: str | None, canonical: str | None, title: str, date: dt.datetime | None
) -> str:
    """Identity within one feed: the entry id, else the canonical link, else title+date."""
    if entry_id and entry_id.strip():
        return "id:" + entry_id.strip()
    if canonical:
        return "link:" + canonical
    stamp = date.isoformat() if date else ""
    return "hash:" + hashlib.sha256(f"{title}\x00{stamp}".encode()).hexdigest()


def content_hash(
    title: str, content_html: str, categories: tuple[str, ...], updated: dt.datetime | None
) -> str:
    """Stable hash of what a reader sees; a different hash means the post was edited."""
    digest = hashlib.sha256(CONTENT_HASH_VERSION.encode())
    for part in (
        title,
        content_html,
        "\x1f".join(categories),
        updated.isoformat() if updated else "",
    ):
        digest.update(b"\x00" + part.encode())
    return digest.hexdigest()
