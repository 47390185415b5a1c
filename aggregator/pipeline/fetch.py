"""HTTP for feeds and homepages: conditional GET, limits, address guard, politeness.

Everything from the network is untrusted. A fetch is bounded in total time (not
per read), in bytes (after decompression, so a gzip bomb stops at the limit),
and in redirects; every hop is checked against the address guard, so a feed
cannot point us at the local network. The guard checks the addresses a host name
resolves to as the connection uses them (a resolver of our own), so a name that
answers differently a second time (DNS rebinding) cannot slip past. Failures raise
FeedError with a reason an organiser can read. This module decides nothing about
feeds' content.

The client is aiohttp: on the benchmark's 500 feeds, 50 at once, bare GETs took
0.55 s with aiohttp and 3.8 s with httpx (its pool's bookkeeping is CPU-bound at
that concurrency on 2 cores); see benchmarks/poll.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import certifi
from aiohttp.abc import AbstractResolver, ResolveResult

from .. import __version__
from ..errors import FeedError
from ..records import FetchResult
from ..urls import host_key
from .decide import header_hub_links

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


def _refused(host: str, address: str) -> FeedError:
    return FeedError(
        f"refused: {host} points inside the network ({address}); "
        "set polling.allow_private_addresses to allow it"
    )


def check_address(url: str, allow_private: bool) -> None:
    """Refuse non-http(s) URLs, and IP addresses inside the network unless allowed.
    (Host names are checked by GuardedResolver, on the addresses the connection uses.)"""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise FeedError(f"refused: not a valid address ({url[:200]})") from None
    if parts.scheme not in ("http", "https"):
        raise FeedError(f"refused: only http and https addresses can be fetched ({parts.scheme}:)")
    if not host:
        raise FeedError("refused: the address has no host name")
    if allow_private:
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass  # a name: GuardedResolver checks what it resolves to
    else:
        if not _is_public(host):
            raise _refused(host, host)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing names that resolve inside the network: the addresses
    checked are the addresses connected to."""

    def __init__(self, allow_private: bool):
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            answers = await self._inner.resolve(host, port, family)
        except OSError:
            raise FeedError(f"cannot find the server {host} (DNS lookup failed)") from None
        if not self._allow_private:
            for answer in answers:
                if not _is_public(answer["host"]):
                    raise _refused(host, answer["host"])
        return answers

    async def close(self) -> None:
        await self._inner.close()


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


def _server_now(headers: Mapping[str, str]) -> float:
    """The server's clock (its Date header): HTTP dates in its answer are relative to it."""
    try:
        when = email.utils.parsedate_to_datetime(headers.get("date", ""))
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None or when.tzinfo is None:
        return time.time()
    return when.timestamp()


def _fresh_for(headers: Mapping[str, str]) -> float | None:
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


class FeedClient:
    """One aiohttp session: a pool of `concurrency` connections kept alive per host, no
    cookies, no proxy from the environment, CA certificates from certifi."""

    def __init__(self, concurrency: int, limits: FetchLimits):
        self.concurrency = concurrency
        self.limits = limits
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> FeedClient:
        connector = aiohttp.TCPConnector(
            limit=self.concurrency,
            limit_per_host=0,  # HostGate sets the per-host limits
            ssl=ssl.create_default_context(cafile=certifi.where()),
            resolver=GuardedResolver(self.limits.allow_private_addresses),
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.limits.user_agent},
            timeout=aiohttp.ClientTimeout(
                total=None,  # `fetch` bounds the whole exchange, redirects included
                sock_connect=self.limits.timeout_seconds,
                sock_read=self.limits.timeout_seconds,
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            # blog hosts send long headers (CSP, cookies); aiohttp's default is 8 KB
            max_line_size=32768,
            max_field_size=32768,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def get(self, url: str, headers: dict[str, str]) -> Any:
        assert self._session is not None, "use `async with FeedClient(...)`"
        return self._session.get(url, headers=headers, allow_redirects=False)

    def post(self, url: str, form: dict[str, str]) -> Any:
        assert self._session is not None, "use `async with FeedClient(...)`"
        return self._session.post(url, data=form, allow_redirects=False)


def make_client(concurrency: int, limits: FetchLimits) -> FeedClient:
    return FeedClient(concurrency, limits)


@contextlib.asynccontextmanager
async def open_client(
    concurrency: int, limits: FetchLimits
) -> AsyncIterator[tuple[FeedClient, HostGate]]:
    """A client and the per-host gate that goes with it, for one poll or one discovery."""
    async with make_client(concurrency, limits) as client:
        yield client, HostGate(limits.per_host_concurrency, limits.per_host_per_second)


async def fetch(
    client: FeedClient,
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
    client: FeedClient,
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
        check_address(current, limits.allow_private_addresses)
        if gate is not None:
            async with gate(current):
                outcome = await _one_request(client, current, headers, limits)
        else:
            outcome = await _one_request(client, current, headers, limits)
        if isinstance(outcome, FetchResult):
            return dataclasses.replace(outcome, url=current, moved_to=moved_to)
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
    client: FeedClient, url: str, headers: dict[str, str], limits: FetchLimits
) -> FetchResult | tuple[int, str]:
    try:
        async with client.get(url, headers) as response:
            status = response.status
            if status in (301, 302, 303, 307, 308) and response.headers.get("location"):
                await response.content.read(65536)  # a short body: the connection is reused
                return status, response.headers["location"]
            if status == 304:
                return FetchResult(
                    url=url,
                    modified=False,
                    etag=response.headers.get("etag") or headers.get("If-None-Match"),
                    last_modified=response.headers.get("last-modified")
                    or headers.get("If-Modified-Since"),
                    fresh_for=_fresh_for(response.headers),
                )
            if status != 200:
                _raise_for_status(status, response.headers)
            declared = response.content_length
            if declared is not None and declared > limits.max_bytes:
                raise FeedError(_too_large(limits.max_bytes))
            chunks: list[bytes] = []
            size = 0
            # decompressed chunks, each of bounded size: a gzip bomb stops at the limit
            async for chunk in response.content.iter_chunked(65536):
                size += len(chunk)
                if size > limits.max_bytes:
                    raise FeedError(_too_large(limits.max_bytes))
                chunks.append(chunk)
            content_type = response.headers.get("content-type", "")
            hub, self_url = header_hub_links(response)
            return FetchResult(
                url=url,
                modified=True,
                content=b"".join(chunks),
                content_type=content_type,
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                fresh_for=_fresh_for(response.headers),
                hub=hub,
                self_url=self_url,
            )
    except FeedError:
        raise
    except aiohttp.ConnectionTimeoutError:
        raise FeedError("timed out while connecting to the server") from None
    except aiohttp.SocketTimeoutError:
        raise FeedError(
            f"timed out: the server was too slow (limit {limits.timeout_seconds:g} s)"
        ) from None
    except aiohttp.ClientConnectorCertificateError as e:
        reason = _short(e.certificate_error)
        raise FeedError(f"the server's certificate is not valid ({reason})") from None
    except aiohttp.ClientConnectorError as e:
        raise FeedError(f"cannot connect to the server ({_short(e.os_error)})") from None
    except aiohttp.ClientPayloadError as e:
        if "decode" in str(e).lower() or "compress" in str(e).lower():
            raise FeedError("the server sent a corrupt compressed body") from None
        raise FeedError(f"the connection broke off ({_short(e)})") from None
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
        raise FeedError(f"the connection broke off ({_short(e)})") from None
    except aiohttp.InvalidURL as e:
        raise FeedError(f"refused: invalid address ({_short(e)})") from None
    except aiohttp.ClientResponseError as e:
        raise FeedError(f"the server's answer is not valid HTTP ({_short(e.message)})") from None
    except aiohttp.ClientError as e:
        raise FeedError(f"HTTP error ({_short(e)})") from None
    except (ValueError, UnicodeError) as e:
        raise FeedError(f"refused: invalid address ({_short(e)})") from None


async def post_form(client: FeedClient, url: str, form: dict[str, str], limits: FetchLimits) -> int:
    """POST a form through the guarded client (a WebSub request to a hub a feed named:
    the same address guard as feeds); the answer's status, or FeedError."""
    check_address(url, limits.allow_private_addresses)
    try:
        async with asyncio.timeout(limits.timeout_seconds), client.post(url, form) as answer:
            await answer.content.read(4096)
            return int(answer.status)
    except TimeoutError:
        raise FeedError(f"no answer within {limits.timeout_seconds:g} seconds") from None
    except aiohttp.ClientError as e:
        raise FeedError(f"cannot reach it ({_short(e)})") from None
    except (ValueError, UnicodeError) as e:
        raise FeedError(f"refused: invalid address ({_short(e)})") from None


def _too_large(limit: int) -> str:
    return f"feed too large: more than {limit:,} bytes (polling.max_feed_bytes)"


def _short(error: object) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:160]


def _raise_for_status(status: int, headers: Mapping[str, str]) -> None:
    if status == 410:
        raise FeedError(
            "gone (410): the site says this feed was removed for good; polling stopped",
            gone=True,
        )
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(headers.get("retry-after"), _server_now(headers))
    words = _STATUS_WORDS.get(status)
    if words is None:
        kind = "server error" if status >= 500 else "unexpected answer"
        words = f"{kind} (HTTP {status})"
    raise FeedError(words, retry_after=retry_after)
