"""The web app (`aggregator serve`): public pages, subscriptions, blog registration and
the organisers' dashboard, as route modules over one `Aggregator`.

A client of `Aggregator` like the CLI: routes read forms, call one method, render a
template. Blocking calls run in the thread pool (`support.in_thread`), so the
aggregator's own event loops (discovery, polling) run there untouched. Every form
carries a CSRF token tied to the signed session cookie.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from granian.utils.proxies import wrap_asgi_with_proxy_headers
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import Receive, Scope, Send

from ..config import load_settings
from ..core import Aggregator
from ..errors import AggregatorError
from . import admin, public, registration, subscriptions, websub
from .files import OutputFiles, answer_from_memory
from .middleware import BodyLimit, SecurityHeaders
from .support import CsrfError, Limits, PageCache, csrf_refused

SESSION_DAYS = 14
#: the app of each of `serve`'s web processes, as granian imports it
FACTORY = "aggregator.web:create_app_from_config"


class WebApp(Starlette):
    """The app: a feed reader's conditional GET of a published file is answered before
    any middleware (it needs no session, routing or form), everything else by Starlette."""

    files: OutputFiles

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await answer_from_memory(self.files, scope, send):
            await super().__call__(scope, receive, send)


def create_app(agg: Aggregator, *, close_on_shutdown: bool = False) -> WebApp:
    routes = [
        *public.routes,
        *subscriptions.routes,
        *registration.routes,
        *admin.routes,
        *websub.routes,
        public.fallback,
    ]
    files = OutputFiles(agg.settings.output_dir)
    app = WebApp(
        routes=routes,
        middleware=[
            # behind a proxy on this machine, X-Forwarded-For and -Proto say who asked, how
            Middleware(wrap_asgi_with_proxy_headers, trusted_hosts="127.0.0.1"),
            Middleware(SecurityHeaders),
            # a hub pushes whole feeds: as large as a polled feed may be
            Middleware(BodyLimit, larger={websub.PREFIX: agg.settings.polling.max_feed_bytes}),
            Middleware(
                SessionMiddleware,
                secret_key=agg.session_secret(),
                session_cookie="session",
                same_site="lax",
                https_only=agg.settings.event.site_url.startswith("https://"),
                max_age=SESSION_DAYS * 24 * 3600,
            ),
        ],
        exception_handlers={CsrfError: csrf_refused},
        lifespan=_closing if close_on_shutdown else None,
    )
    app.state.aggregator = agg
    app.state.limits = Limits()
    app.state.pages = PageCache(agg.settings.output_dir)
    app.state.files = app.files = files
    return app


@asynccontextmanager
async def _closing(app: Starlette) -> AsyncIterator[None]:
    yield
    app.state.aggregator.close()


def create_app_from_config() -> WebApp:
    """The app of one of `serve`'s web processes: an `Aggregator` of its own, opened from
    the config in $AGGREGATOR_CONFIG (set by `serve`) and closed at shutdown."""
    try:
        agg = Aggregator(load_settings())
    except AggregatorError as e:  # one line, as from the command itself
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    return create_app(agg, close_on_shutdown=True)


__all__ = ["FACTORY", "WebApp", "create_app", "create_app_from_config"]
