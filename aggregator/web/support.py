"""What every route module shares: rendering, forms, CSRF, rate limits, redirects,
conditional file answers, and running blocking aggregator calls off the event loop."""

from __future__ import annotations

import email.utils
import hashlib
import secrets
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
    page = (
        templates()
        .get_template(f"web/{name}")
        .render(
            event=aggregator(request).settings.event,
            csrf=csrf_token(request),
            organiser=organiser(request),
            flash=request.session.pop("flash", None),
            flash_at=request.session.pop("flash_at", None),
            flash_error=request.session.pop("flash_error", False),
            now=aggregator(request).now(),
            current=request.url.path,
            **context,
        )
    )
    return HTMLResponse(page, status_code=status)


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


def conditional_file(request: Request, path: Path, media_type: str) -> Response:
    """Serve an output file with ETag/Last-Modified, answering 304 when unchanged."""
    stat = path.stat()
    etag = (
        '"' + hashlib.sha256(f"{stat.st_mtime_ns}-{stat.st_size}".encode()).hexdigest()[:20] + '"'
    )
    modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
    headers = {"ETag": etag, "Last-Modified": modified, "Cache-Control": "public, max-age=300"}
    if_none = request.headers.get("if-none-match")
    since = request.headers.get("if-modified-since")
    not_modified = False
    if if_none is not None:
        not_modified = etag in [t.strip() for t in if_none.split(",")] or if_none.strip() == "*"
    elif since:
        try:
            not_modified = (
                int(stat.st_mtime) <= email.utils.parsedate_to_datetime(since).timestamp()
            )
        except (TypeError, ValueError):
            not_modified = False
    if not_modified:
        return Response(status_code=304, headers=headers)
    return Response(path.read_bytes(), media_type=media_type, headers=headers)
