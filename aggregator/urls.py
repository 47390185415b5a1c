"""Web addresses: canonical forms for comparing links, and resolving relative ones.

Shared by the pipeline (deduplication, sanitising, parsing) and storage (looking a
post up by its link); pure functions over strings.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

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
        from w3lib.url import canonicalize_url  # 45 ms to import: not on the start-up path

        return canonicalize_url(rebuilt)
    except ValueError:
        return rebuilt


def link_key(canonical: str | None) -> str | None:
    """The canonical link without its scheme: an http and an https copy are one post."""
    if not canonical:
        return None
    return canonical.split("://", 1)[-1]


def usable_base(base: str | None) -> str | None:
    if base and urlsplit(base).scheme in ("http", "https"):
        return base
    return None


def absolute_url(url: str | None, base: str | None) -> str | None:
    """Resolve `url` against `base`; None for anything that is not http(s) in the end."""
    if not url:
        return None
    url = url.strip()
    try:
        resolved = urljoin(base, url) if base else url
        parts = urlsplit(resolved)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return resolved


def host_key(url: str) -> str:
    """Blogs on one platform share its servers: *.blogspot.com counts as one host."""
    try:
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:  # an address Python cannot split (a broken IPv6 literal)
        return ""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return ".".join(host.rsplit(".", 2)[-2:])
