"""HTTP for feeds and homepages: conditional GET, limits, address guard, politeness.

Everything from the network is untrusted. A fetch is bounded in total time (not
per read), in bytes (after decompression, so a gzip bomb stops at the limit),
and in redirects; every hop is checked against the address guard, so a feed
cannot point us at the local network. Failures raise FeedError with a reason an
organiser can read. This module decides nothing about feeds' content.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from . import __version__
from .errors import FeedError
from .records import FetchResult

MAX_REDIRECTS = 5
_ACCEPT_FEED = (
    "application/atom+xml, application/rss+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, "
    "text/html;q=0.5, */*;q=0.1"
)
_STATUS_WORDS = {
    400: "bad request",
    401: "access denied (401: the feed needs a login)",
    403: "access denied (403: the server refuses us)",
    404: "not found (404: the feed address is wrong or the feed was removed)",
    429: "too many requests (429: the server asks us to slow down)",
    500: "server error (500)",
    502: "server error (502 bad gateway)",
    503: "server unavailable (503)",
    504: "server error (504 gateway timeout)",
}


@dataclass(frozen=True)
class FetchLimits:
    timeout_seconds: float = 20
    max_bytes: int = 5_000_000
    allow_private_addresses: bool = False
    per_host_concurrency: int = 4
    per_host_per_second: float = 10.0
    user_agent: str = f"event-aggregator/{__version__}"


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_address(url: str, allow_private: bool) -> None:
    """Refuse non-http(s) URLs, and hosts that resolve inside the network unless allowed."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FeedError(f"refused: not a valid address ({url[:200]})") from None
    if parts.scheme not in ("http", "https"):
        raise FeedError(f"refused: only http and https addresses can be fetched ({parts.scheme}:)")
    if not host:
        raise FeedError("refused: the address has no host name")
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise FeedError(f"cannot find the server {host} (DNS lookup failed)") from None
    for info in infos:
        if not _is_public(str(info[4][0])):
            raise FeedError(
                f"refused: {host} points inside the network ({info[4][0]}); "
                "set polling.allow_private_addresses to allow it"
            )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _server_now(headers: httpx.Headers) -> float:
    """The server's clock (its Date header): HTTP dates in its answer are relative to it."""
    try:
        when = email.utils.parsedate_to_datetime(headers.get("date", ""))
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None or when.tzinfo is None:
        return time.time()
    return when.timestamp()


def _fresh_for(headers: httpx.Headers) -> float | None:
    cache_control = headers.get("cache-control", "")
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() in ("no-cache", "no-store"):
            return None
        if name.lower() == "max-age" and value.strip('"').isdigit():
            return float(value.strip('"'))
    expires = headers.get("expires")
    if expires:
        try:
            when = email.utils.parsedate_to_datetime(expires)
        except (TypeError, ValueError, IndexError):
            return None
        if when is not None and when.tzinfo is not None:
            return max(0.0, when.timestamp() - _server_now(headers))
    return None


def host_key(url: str) -> str:
    """Blogs on one platform share its servers: *.blogspot.com counts as one host."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return ".".join(host.rsplit(".", 2)[-2:])


class _Gate:
    def __init__(self, at_once: int, per_second: float):
        self.slots = asyncio.Semaphore(at_once)
        self.spacing = 1.0 / per_second
        self.next_start = 0.0

    async def __aenter__(self) -> None:
        await self.slots.acquire()
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self.next_start)
        self.next_start = start + self.spacing
        if start > now:
            await asyncio.sleep(start - now)

    async def __aexit__(self, *exc: object) -> None:
        self.slots.release()


class HostGate:
    """Per host: at most N requests at once and M starts per second, so a poll never
    bursts one platform into 429s."""

    def __init__(self, at_once: int, per_second: float = 10.0):
        self._at_once = at_once
        self._per_second = per_second
        self._gates: dict[str, _Gate] = {}

    def __call__(self, url: str) -> _Gate:
        key = host_key(url)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate(self._at_once, self._per_second)
        return gate


#: connections per pool; httpcore scans its whole pool for every request it places, so
#: large pools cost CPU that grows with the square of the concurrency
POOL_SIZE = 8


class ShardedClient:
    """Several small httpx pools behind one `stream()`: a request goes to the pool its URL
    hashes to, so a feed's keep-alive connection is reused without one large pool to scan."""

    def __init__(self, concurrency: int, limits: FetchLimits):
        shards = max(1, -(-concurrency // POOL_SIZE))
        per_shard = -(-concurrency // shards)
        ssl_context = httpx.create_ssl_context()  # loading the CA file once, not per pool
        self.clients = [
            httpx.AsyncClient(
                follow_redirects=False,
                timeout=httpx.Timeout(limits.timeout_seconds),
                limits=httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard),
                headers={"User-Agent": limits.user_agent},
                trust_env=False,
                verify=ssl_context,
            )
            for _ in range(shards)
        ]

    def stream(self, method: str, url: str, **kwargs: Any) -> Any:
        return self.clients[hash(url) % len(self.clients)].stream(method, url, **kwargs)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def __aenter__(self) -> ShardedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def make_client(concurrency: int, limits: FetchLimits) -> ShardedClient:
    return ShardedClient(concurrency, limits)


async def fetch(
    client: ShardedClient,
    url: str,
    limits: FetchLimits,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    gate: HostGate | None = None,
) -> FetchResult:
    """GET `url` within the limits; raise FeedError with a readable reason on failure."""
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            return await _fetch(client, url, limits, etag, last_modified, gate)
    except TimeoutError:
        raise FeedError(
            f"timed out: no complete answer within {limits.timeout_seconds:g} seconds"
        ) from None


async def _fetch(
    client: ShardedClient,
    url: str,
    limits: FetchLimits,
    etag: str | None,
    last_modified: str | None,
    gate: HostGate | None,
) -> FetchResult:
    headers = {"Accept": _ACCEPT_FEED}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    seen = {url}
    moved_to: str | None = None
    permanent = True
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        await check_address(current, limits.allow_private_addresses)
        if gate is not None:
            async with gate(current):
                outcome = await _one_request(client, current, headers, limits)
        else:
            outcome = await _one_request(client, current, headers, limits)
        if isinstance(outcome, FetchResult):
            return FetchResult(
                url=current,
                modified=outcome.modified,
                content=outcome.content,
                content_type=outcome.content_type,
                etag=outcome.etag,
                last_modified=outcome.last_modified,
                moved_to=moved_to,
                fresh_for=outcome.fresh_for,
                headers=outcome.headers,
            )
        status, location = outcome
        try:
            target = urljoin(current, location)
        except ValueError:
            raise FeedError("refused: the server redirected to an invalid address") from None
        if target in seen:
            raise FeedError("redirect loop: the server keeps sending us back to the same address")
        seen.add(target)
        permanent = permanent and status in (301, 308)
        if permanent:
            moved_to = target
        current = target
    raise FeedError(f"too many redirects (more than {MAX_REDIRECTS})")


async def _one_request(
    client: ShardedClient, url: str, headers: dict[str, str], limits: FetchLimits
) -> FetchResult | tuple[int, str]:
    try:
        async with client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status in (301, 302, 303, 307, 308) and response.headers.get("location"):
                await _drain(response, limits)
                return status, response.headers["location"]
            if status == 304:
                await _drain(response, limits)
                return FetchResult(
                    url=url,
                    modified=False,
                    etag=response.headers.get("etag") or headers.get("If-None-Match"),
                    last_modified=response.headers.get("last-modified")
                    or headers.get("If-Modified-Since"),
                    fresh_for=_fresh_for(response.headers),
                )
            if status != 200:
                _raise_for_status(response)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise FeedError(_too_large(limits.max_bytes))
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limits.max_bytes:
                    raise FeedError(_too_large(limits.max_bytes))
                chunks.append(chunk)
            return FetchResult(
                url=url,
                modified=True,
                content=b"".join(chunks),
                content_type=response.headers.get("content-type", ""),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                fresh_for=_fresh_for(response.headers),
                headers={"content-type": response.headers.get("content-type", "")},
            )
    except FeedError:
        raise
    except httpx.ConnectTimeout:
        raise FeedError("timed out while connecting to the server") from None
    except httpx.TimeoutException:
        raise FeedError(
            f"timed out: the server was too slow (limit {limits.timeout_seconds:g} s)"
        ) from None
    except httpx.ConnectError as e:
        raise FeedError(f"cannot connect to the server ({_short(e)})") from None
    except httpx.DecodingError:
        raise FeedError("the server sent a corrupt compressed body") from None
    except (httpx.RemoteProtocolError, httpx.ReadError) as e:
        raise FeedError(f"the connection broke off ({_short(e)})") from None
    except httpx.HTTPError as e:
        raise FeedError(f"HTTP error ({_short(e)})") from None
    except (ValueError, UnicodeError) as e:
        raise FeedError(f"refused: invalid address ({_short(e)})") from None


async def _drain(response: httpx.Response, limits: FetchLimits) -> None:
    """Read a small body to its end so the connection goes back to the pool for reuse."""
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > 65536:
            break  # not worth it: let the connection close


def _too_large(limit: int) -> str:
    return f"feed too large: more than {limit:,} bytes (polling.max_feed_bytes)"


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:160]


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status == 410:
        raise FeedError(
            "gone (410): the site says this feed was removed for good; polling stopped",
            gone=True,
        )
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(
            response.headers.get("retry-after"), _server_now(response.headers)
        )
    words = _STATUS_WORDS.get(status)
    if words is None:
        kind = "server error" if status >= 500 else "unexpected answer"
        words = f"{kind} (HTTP {status})"
    raise FeedError(words, retry_after=retry_after)
