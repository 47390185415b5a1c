"""Identities of posts: canonical links, text fingerprints, per-feed entry keys.

Pure functions (DESIGN.md, "One post, once"). The storage layer uses these
keys to decide whether an entry is a post it already holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

from .match import normalise_phrase

# query parameters that only say where a reader came from
_TRACKING_PARAMS = frozenset(
    [
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "yclid",
        "twclid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "ref_src",
        "spm",
    ]
)
_TRACKING_PREFIXES = ("utm_", "pk_", "hmb_")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: fingerprints of shorter texts would match unrelated posts ("Photo", "")
MIN_FINGERPRINT_CHARS = 80
#: bump when what goes into `content_hash` changes, so stored hashes are not compared across rules
CONTENT_HASH_VERSION = "1"


def _keep_param(name: str, value: str) -> bool:
    lowered = name.lower()
    if lowered in _TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES):
        return False
    # Medium's feed links carry ?source=rss-…
    if lowered == "source" and value.startswith("rss"):
        return False
    # Blogger's mobile switch: ?m=1 / ?m=0
    return not (lowered == "m" and value in ("0", "1"))


def canonical_url(url: str | None) -> str | None:
    """Scheme and host lower-cased, default port, fragment and tracking parameters dropped."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
            return None
        scheme = parts.scheme.lower()
        host = parts.hostname.lower().rstrip(".")
        port = parts.port
    except ValueError:
        return None
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if _keep_param(k, v)]
    )
    rebuilt = urlunsplit((scheme, netloc, parts.path or "/", query, ""))
    try:
        return canonicalize_url(rebuilt)
    except ValueError:
        return rebuilt


def link_key(canonical: str | None) -> str | None:
    """The canonical link without its scheme: an http and an https copy are one post."""
    if not canonical:
        return None
    return canonical.split("://", 1)[-1]


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
