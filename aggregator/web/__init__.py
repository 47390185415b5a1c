"""The web app (`aggregator serve`): public pages, subscriptions, and the organiser dashboard.

A client of `Aggregator` like the CLI: routes read forms, call one method, render a
template. Endpoints are plain functions, which Starlette runs in a thread pool, so the
aggregator's own event loops (discovery, polling) run inside them untouched.
Every form carries a CSRF token tied to the session; the one-click unsubscribe POST
(RFC 8058) needs none, since its URL holds the subscriber's secret token.
"""

from __future__ import annotations

import email.utils
import hashlib
import secrets
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ..core import Aggregator
from ..errors import AggregatorError
from ..outputs.templating import templates
from ..pipeline.discover import discover
from ..pipeline.fetch import HostGate, make_client
from ..pipeline.sanitize import sanitize_html
from ..text import excerpt, html_to_text

PAGE_SIZE = 20
_hasher = PasswordHasher()


class RateLimit:
    """At most `limit` hits per key in a sliding window of `seconds` (in memory)."""

    def __init__(self, limit: int, seconds: float):
        self.limit, self.seconds = limit, seconds
        self.hits: dict[str, deque[float]] = defaultdict(deque)
        self.lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            hits = self.hits[key]
            while hits and hits[0] <= now - self.seconds:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_app(agg: Aggregator) -> Starlette:
    settings = agg.settings
    site = settings.event.site_url
    env = templates()
    subscribe_by_client = RateLimit(5, 3600)
    subscribe_by_address = RateLimit(3, 3600)
    register_by_client = RateLimit(5, 3600)
    login_by_client = RateLimit(10, 900)

    # ---- helpers ----

    def csrf_token(request: Request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = request.session["csrf"] = secrets.token_urlsafe(24)
        return token

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        page = env.get_template(f"web/{name}").render(
            event=settings.event,
            csrf=csrf_token(request),
            organiser=request.session.get("organiser"),
            flash=request.session.pop("flash", None),
            **context,
        )
        return HTMLResponse(page, status_code=status)

    def message(request: Request, title: str, text: str, status: int = 200) -> HTMLResponse:
        return render(request, "message.html", status=status, title=title, text=text)

    async def form(request: Request) -> dict[str, str]:
        data = await request.form()
        return {k: str(v) for k, v in data.items()}

    def check_csrf(request: Request, data: dict[str, str]) -> None:
        expected = request.session.get("csrf")
        if not expected or not secrets.compare_digest(expected, data.get("csrf", "")):
            raise PermissionError

    def client(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def redirect(url: str, flash: str | None = None, request: Request | None = None) -> Response:
        if flash and request is not None:
            request.session["flash"] = flash
        return RedirectResponse(url, status_code=303)

    # ---- public ----

    def home(request: Request) -> Response:
        try:
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            page = 1
        posts = agg.storage.posts.page(PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
        tz = settings.event.tz
        return render(
            request,
            "home.html",
            posts=posts[:PAGE_SIZE],
            page=page,
            more=len(posts) > PAGE_SIZE,
            local=lambda d: d.astimezone(tz),
            excerpt=excerpt,
        )

    def output_file(request: Request) -> Response:
        name = request.path_params["name"]
        allowed = {"feed.atom": "application/atom+xml", "contributors.opml": "text/x-opml"}
        if name.startswith("digests/") and name.endswith(".html"):
            media = "text/html; charset=utf-8"
        elif name in allowed:
            media = allowed[name]
        else:
            return message(request, "Not found", "There is no such page.", 404)
        path = (settings.output_dir / name).resolve()
        if settings.output_dir.resolve() not in path.parents or not path.is_file():
            return message(request, "Not found", "There is no such page (yet).", 404)
        return conditional_file(request, path, media)

    def digest_archive(request: Request) -> Response:
        digests = [
            (d, n)
            for d, n in agg.storage.posts.digests()
            if (settings.output_dir / "digests" / f"{d.isoformat()}.html").exists()
        ]
        return render(request, "digests.html", digests=digests)

    async def subscribe(request: Request) -> Response:
        data = await form(request)
        check_csrf(request, data)
        address = data.get("email", "").strip()
        if not subscribe_by_client.allow(client(request)) or not subscribe_by_address.allow(
            address.lower()
        ):
            return message(
                request, "Too many requests", "Please wait a while before trying again.", 429
            )
        try:
            address = agg.normalise_email(address)
        except AggregatorError:
            return message(
                request, "Check the address", "That does not look like an email address.", 400
            )

        def confirm_url(token: str) -> str:
            return f"{site}confirm/{token}"

        try:
            await _in_thread(agg.request_subscription, address, confirm_url)
        except AggregatorError:
            return message(
                request,
                "Please try again later",
                "We could not send the confirmation email just now.",
                503,
            )
        # the same answer whether or not the address was known
        return message(
            request,
            "Check your inbox",
            f"If {address} is not subscribed yet, a confirmation link is on its way.",
        )

    def confirm(request: Request) -> Response:
        address = agg.confirm_subscription(request.path_params["token"])
        if address is None:
            return message(
                request, "Link not valid", "This confirmation link is not valid (any more).", 404
            )
        return message(
            request,
            "Subscribed",
            f"{address} will get the {settings.event.name} digest every morning.",
        )

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "GET":
            known = agg.storage.subscribers.by_token(token)
            if known is None:
                return message(request, "Link not valid", "This link is not valid.", 404)
            return render(request, "unsubscribe.html", token=token, email=known)
        # RFC 8058 one-click (List-Unsubscribe=One-Click) or the page's button
        address = agg.unsubscribe(token)
        if address is None:
            return message(request, "Link not valid", "This link is not valid.", 404)
        return message(
            request,
            "Unsubscribed",
            f"{address} will not get the {settings.event.name} digest any more.",
        )

    async def register(request: Request) -> Response:
        if request.method == "GET":
            return render(request, "register.html", found=None)
        data = await form(request)
        check_csrf(request, data)
        if not register_by_client.allow(client(request)):
            return message(
                request, "Too many requests", "Please wait a while before trying again.", 429
            )
        name, url = data.get("name", "").strip(), data.get("url", "").strip()
        try:
            address = agg.normalise_email(data.get("email", ""))
            if not name or not url:
                raise AggregatorError("give your name and your blog's address")
            found = await _discover(agg, url)
            agg.storage.web.add_registration(
                name, url, found.url, found.parsed.title, address, agg.now()
            )
        except AggregatorError as e:
            return render(
                request, "register.html", status=400, found=None, error=str(e), values=data
            )
        latest = [
            {
                "title": e.title or "Untitled",
                "link": e.link,
                "text": excerpt(
                    html_to_text(sanitize_html(e.content_html or e.summary_html, e.base)), 30
                ),
            }
            for e in found.parsed.entries[:5]
        ]
        return render(request, "register.html", found=found, latest=latest)

    # ---- organisers ----

    def organiser(request: Request) -> str | None:
        return request.session.get("organiser")

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return render(request, "login.html")
        data = await form(request)
        check_csrf(request, data)
        if not login_by_client.allow(client(request)):
            return message(request, "Too many attempts", "Please wait 15 minutes.", 429)
        address = data.get("email", "").strip().lower()
        stored = agg.storage.web.organiser_hash(address)
        try:
            ok = stored is not None and _hasher.verify(stored, data.get("password", ""))
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            return render(request, "login.html", status=401, error="Wrong email or password.")
        request.session.clear()
        request.session["organiser"] = address
        return redirect("/admin")

    async def logout(request: Request) -> Response:
        data = await form(request)
        check_csrf(request, data)
        request.session.clear()
        return redirect("/")

    def admin(request: Request) -> Response:
        if not organiser(request):
            return redirect("/admin/login")
        subscribers = agg.subscribers()
        return render(
            request,
            "admin.html",
            feeds=agg.status(),
            pending=[c for c in agg.contributors() if not c.feeds],
            registrations=agg.storage.web.registrations(),
            subscribers=subscribers,
            confirmed=sum(s.active for s in subscribers),
            unsubscribed=sum(s.unsubscribed_at is not None for s in subscribers),
            posts=agg.storage.posts.latest(30, include_hidden=True),
        )

    async def admin_action(request: Request) -> Response:
        if not organiser(request):
            return message(request, "Log in first", "This needs an organiser login.", 403)
        data = await form(request)
        check_csrf(request, data)
        action = request.path_params["action"]
        try:
            note = await _in_thread(_admin_action, agg, action, data)
        except AggregatorError as e:
            return redirect("/admin", f"Could not do that: {e}", request)
        if action == "preview":
            return HTMLResponse(note)
        return redirect("/admin", note, request)

    async def csrf_refused(request: Request, exc: Exception) -> Response:
        return message(
            request,
            "Form expired",
            "The form was too old or came from elsewhere. Go back, reload and try again.",
            403,
        )

    routes = [
        Route("/", home),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm/{token}", confirm),
        Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
        Route("/register", register, methods=["GET", "POST"]),
        Route("/digests/", digest_archive),
        Route("/admin", admin),
        Route("/admin/login", login, methods=["GET", "POST"]),
        Route("/admin/logout", logout, methods=["POST"]),
        Route("/admin/{action}", admin_action, methods=["POST"]),
        Route("/{name:path}", output_file),
    ]
    secure = site.startswith("https://")
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=agg.storage.web.secret_key(),
                session_cookie="session",
                same_site="lax",
                https_only=secure,
                max_age=14 * 24 * 3600,
            )
        ],
        exception_handlers={PermissionError: csrf_refused},
    )
    app.state.aggregator = agg
    return app


async def _in_thread(func: Any, *args: Any) -> Any:
    """Run a blocking aggregator call (which may run its own event loop) off the server's."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(func, *args)


async def _discover(agg: Aggregator, url: str):
    async with make_client(4, agg.limits) as client:
        gate = HostGate(agg.limits.per_host_concurrency, agg.limits.per_host_per_second)
        return await discover(client, url, agg.limits, gate)


def _admin_action(agg: Aggregator, action: str, data: dict[str, str]) -> str:
    """The dashboard's buttons; returns the note shown after the redirect."""
    if action == "add":
        result = agg.add_contributor(
            data["name"],
            data["url"],
            feed=data.get("feed") or None,
            all_posts=data.get("all_posts") == "on",
        )
        return f"Added {result.contributor}: " + ", ".join(f.url for f in result.feeds)
    if action in ("approve", "reject"):
        row = agg.storage.web.decide_registration(int(data["id"]), action + "d")
        if action == "reject":
            return f"Rejected {row.name}."
        agg.add_contributor(row.name, row.homepage, feed=row.feed_url)
        return f"Approved {row.name}: {row.feed_url}"
    if action in ("pause", "resume"):
        agg.set_paused(data["url"], action == "pause")
        return f"{action.capitalize()}d {data['url']}"
    if action == "remove":
        removed = agg.remove_contributor(data["name"])
        return f"Removed {data['name']} and {removed} post(s)."
    if action == "poll":
        summary = agg.update_feeds(include_not_due=True)
        agg.publish()
        return "Polled: " + summary.line()
    if action == "preview":
        return agg.preview_digest_html()
    if action == "send":
        return agg.send_digest().line()
    if action == "unsubscribe":
        agg.remove_subscriber(data["email"])
        return f"Removed {data['email']}."
    if action in ("hide", "show"):
        agg.hide_post(data["url"], action == "hide")
        agg.publish()
        return f"{'Hidden' if action == 'hide' else 'Shown again'}: {data['url']}"
    raise AggregatorError(f"unknown action {action!r}")


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


__all__ = ["create_app", "hash_password"]
