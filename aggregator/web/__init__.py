"""The web app (`aggregator serve`): public pages, subscriptions, blog registration and
the organisers' dashboard, as route modules over one `Aggregator`.

A client of `Aggregator` like the CLI: routes read forms, call one method, render a
template. Blocking calls run in the thread pool (`support.in_thread`), so the
aggregator's own event loops (discovery, polling) run there untouched. Every form
carries a CSRF token tied to the signed session cookie.
"""

from __future__ import annotations

from granian.utils.proxies import wrap_asgi_with_proxy_headers
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import Lifespan

from ..core import Aggregator
from . import admin, public, registration, subscriptions, websub
from .files import OutputFiles, WebApp
from .middleware import BodyLimit, SecurityHeaders
from .support import CsrfError, Limits, PageCache, csrf_refused

SESSION_DAYS = 14


def create_app(agg: Aggregator, *, lifespan: Lifespan[Starlette] | None = None) -> WebApp:
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
        lifespan=lifespan,
    )
    app.state.aggregator = agg
    app.state.limits = Limits()
    app.state.pages = PageCache(agg.settings.output_dir)
    app.state.files = app.files = files
    return app


__all__ = ["WebApp", "create_app"]
