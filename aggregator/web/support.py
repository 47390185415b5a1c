"""What every route module shares: rendering, forms, CSRF, rate limits, redirects, the
cached home page, and running blocking aggregator calls off the event loop."""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..outputs.templating import templates

if TYPE_CHECKING:
    from ..core import Aggregator

T = TypeVar("T")
log = logging.getLogger(__name__)


class CsrfError(Exception):
    """A form without the session's CSRF token (too old, or sent from elsewhere)."""


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` hits per key in a window of `seconds`, counted in the database,
    so that several `serve` processes enforce one limit between them."""

    name: str
    limit: int
    seconds: float

    async def allow(self, request: Request, key: str) -> bool:
        agg = aggregator(request)
        return await in_thread(agg.allow, self.name, key, self.limit, self.seconds)


def address_key(address: str) -> str:
    """One key for every spelling of an address (case, compatibility forms), so look-alike
    spellings share one rate limit."""
    return unicodedata.normalize("NFKC", address).casefold()


@dataclass
class Limits:
    """The web app's rate limits."""

    subscribe_by_client: RateLimit = RateLimit("subscribe-client", 5, 3600)
    subscribe_by_address: RateLimit = RateLimit("subscribe-address", 3, 3600)
    register_by_client: RateLimit = RateLimit("register-client", 5, 3600)
    login_by_client: RateLimit = RateLimit("login-client", 10, 900)
    #: each check may read a blog's feeds
    check_by_client: RateLimit = RateLimit("check-client", 20, 3600)


def aggregator(request: Request) -> Aggregator:
    agg: Aggregator = request.app.state.aggregator
    return agg


def limits(request: Request) -> Limits:
    app_limits: Limits = request.app.state.limits
    return app_limits


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def organiser(request: Request) -> str | None:
    """Who the session cookie says is logged in (for the page's navigation only)."""
    return request.session.get("organiser")


async def logged_in(request: Request) -> str | None:
    """The organiser of a session that is still current: the cookie is signed, and its
    session number must match the account's (logout, a new password and removing the
    account each end every session at once). A stale session is cleared."""
    address, version = request.session.get("organiser"), request.session.get("sv")
    if not isinstance(address, str) or not isinstance(version, int):
        return None
    if not await in_thread(aggregator(request).session_is_current, address, version):
        request.session.clear()
        return None
    return address


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    page = _page(
        request,
        name,
        csrf=csrf_token(request),
        organiser=organiser(request),
        flash=request.session.pop("flash", None),
        flash_at=request.session.pop("flash_at", None),
        flash_error=request.session.pop("flash_error", False),
        **context,
    )
    return HTMLResponse(page, status_code=status)


def _page(request: Request, name: str, **context: Any) -> str:
    return (
        templates()
        .get_template(f"web/{name}")
        .render(
            event=aggregator(request).settings.event,
            now=aggregator(request).now(),
            current=request.url.path,
            **context,
        )
    )


def anonymous(request: Request) -> bool:
    """A visitor whose page is everyone's: not logged in, no note waiting for them."""
    session = request.session
    return "organiser" not in session and "flash" not in session


#: a page kept in memory is built again after this long, even if nothing was published
FRESH_SECONDS = 1.0
#: a page older than this many FRESH_SECONDS is never answered, not even while it is built
#: again: what changed without a publish during a quiet spell shows to the first visitor
MAX_AGE_FACTOR = 10


@dataclass(frozen=True)
class _Built:
    generation: tuple[int, ...] | None
    at: float
    #: the page, split where the visitor's CSRF token goes
    parts: list[bytes]


class PageCache:
    """Public pages as an anonymous visitor sees them, built once and answered from
    memory (no database, no template): the same page for everyone but the CSRF token,
    which is put in per answer.

    A page is built again before it is answered when a publish has written the output
    folder since it was built (by any process: the folder and its `index.html` are
    looked at, a `stat` each, on every answer, so several `serve` processes on one
    database all follow a publish at once). Otherwise it is built again in the
    background once it is FRESH_SECONDS old, the old one answering meanwhile, so what
    reaches the database without a publish (posts stored in the middle of a poll) shows
    within a second or two, and no answer waits for the database."""

    def __init__(self, output_dir: Path, fresh_seconds: float = FRESH_SECONDS) -> None:
        self.output_dir = output_dir
        self._index = output_dir / "index.html"
        self.fresh_seconds = fresh_seconds
        self._pages: dict[str, _Built] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def generation(self) -> tuple[int, ...] | None:
        try:
            folder = os.stat(self.output_dir)
            index = os.stat(self._index)
        except OSError:
            return None
        return (folder.st_mtime_ns, index.st_ino, index.st_mtime_ns, index.st_size)

    def get(self, name: str, page: Callable[[str], str]) -> list[bytes] | None:
        """The page if nothing was published since it was built (cheap: for the event
        loop); if it is old, it is built again in the background."""
        built = self._pages.get(name)
        if built is None or built.generation != self.generation():
            return None
        age = time.monotonic() - built.at
        if age > self.fresh_seconds * MAX_AGE_FACTOR:
            return None  # after a quiet spell: built again before it is answered
        if age > self.fresh_seconds and name not in self._refreshing:
            self._refreshing.add(name)
            threading.Thread(
                target=self._refresh, args=(name, page), name="page-cache", daemon=True
            ).start()
        return built.parts

    def build(self, name: str, page: Callable[[str], str]) -> list[bytes]:
        """The page, built with `page(csrf placeholder)` unless another thread just did
        (blocking: run it in a thread)."""
        with self._lock:
            generation = self.generation()  # before reading: never newer than the page
            built = self._pages.get(name)
            if (
                built is None
                or built.generation != generation
                or time.monotonic() - built.at > self.fresh_seconds
            ):
                at = time.monotonic()
                placeholder = "csrf-" + secrets.token_hex(16)
                parts = [part.encode() for part in page(placeholder).split(placeholder)]
                built = self._pages[name] = _Built(generation, at, parts)
            return built.parts

    def _refresh(self, name: str, page: Callable[[str], str]) -> None:
        try:
            self.build(name, page)
        except Exception as e:  # the next answer builds it, and shows the error
            log.warning("could not build %s again: %s", name, e)
            self._pages.pop(name, None)
        finally:
            self._refreshing.discard(name)


async def cached_page(
    request: Request, name: str, template: str, context: Callable[[], dict[str, Any]]
) -> Response:
    """`render(request, template, **context())` for an anonymous visitor, from
    `PageCache` (the CSRF token, and the session cookie that carries it, as usual)."""
    pages: PageCache = request.app.state.pages

    def page(csrf: str) -> str:
        return _page(
            request,
            template,
            csrf=csrf,
            organiser=None,
            flash=None,
            flash_at=None,
            flash_error=False,
            **context(),
        )

    parts = pages.get(name, page)
    if parts is None:
        parts = await in_thread(pages.build, name, page)
    return Response(csrf_token(request).encode().join(parts), media_type="text/html")


def message(request: Request, title: str, text: str, status: int = 200) -> HTMLResponse:
    return render(request, "message.html", status=status, title=title, text=text)


def too_many(request: Request, text: str = "Please wait a while before trying again.") -> Response:
    return message(request, "Too many requests", text, 429)


async def form(request: Request) -> dict[str, str]:
    data = await request.form()
    return {k: str(v) for k, v in data.items()}


async def checked_form(request: Request) -> dict[str, str]:
    """The posted form, once its CSRF token matches the session's (else CsrfError)."""
    data = await form(request)
    expected = request.session.get("csrf")
    if not expected or not secrets.compare_digest(expected, data.get("csrf", "")):
        raise CsrfError
    return data


def client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def redirect(
    url: str,
    flash: str | None = None,
    request: Request | None = None,
    *,
    at: str | None = None,
    error: bool = False,
) -> Response:
    """A 303 to `url`, with a note for the next page. With `at`, the note is shown in the
    page's part of that id, and the browser is sent to it (`#result`), so the person's
    place and focus stay where they acted."""
    if flash and request is not None:
        request.session["flash"] = flash
        if at:
            request.session["flash_at"] = at
            url += "#result"
        if error:
            request.session["flash_error"] = True
    return RedirectResponse(url, status_code=303)


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """Run a blocking aggregator call (which may run its own event loop) off the server's."""
    return await run_in_threadpool(func, *args)


async def csrf_refused(request: Request, exc: Exception) -> Response:
    if "session" not in request.cookies:
        # no cookie came back at all: the browser blocks them, the form was fine
        return message(
            request,
            "Cookies are off",
            "This form needs one cookie, which keeps it safe from forgery (nothing else is "
            "stored or tracked). Allow cookies for this site, then reload the page and try "
            "again.",
            403,
        )
    return message(
        request,
        "Form expired",
        "The form was too old or came from elsewhere. Go back, reload and try again.",
        403,
    )
