"""The organisers' dashboard: log in and out, the health page, and its buttons.

Each button posts to `/admin/<action>`; `ACTIONS` maps the action to the
`Aggregator` call it makes and the note shown after the redirect."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..core import Aggregator
from ..errors import AggregatorError
from .support import (
    aggregator,
    checked_form,
    client,
    in_thread,
    limits,
    logged_in,
    message,
    redirect,
    render,
)

Form = dict[str, str]
Handler = Callable[[Aggregator, Form], str]


def _field(data: Form, name: str) -> str:
    value = data.get(name, "").strip()
    if not value:
        raise AggregatorError(f"the form is missing {name!r}")
    return value


def _registration_id(data: Form) -> int:
    try:
        return int(_field(data, "id"))
    except ValueError:
        raise AggregatorError("the form's registration id is not a number") from None


def _add(agg: Aggregator, data: Form) -> str:
    result = agg.add_contributor(
        _field(data, "name"),
        _field(data, "url"),
        feed=data.get("feed") or None,
        all_posts=data.get("all_posts") == "on",
    )
    return f"Added {result.contributor}: " + ", ".join(f.url for f in result.feeds)


def _approve(agg: Aggregator, data: Form) -> str:
    row = agg.approve_registration(_registration_id(data))
    return f"Approved {row.name}: {row.feed_url}"


def _reject(agg: Aggregator, data: Form) -> str:
    return f"Rejected {agg.reject_registration(_registration_id(data)).name}."


def _pausing(paused: bool) -> Handler:
    def handler(agg: Aggregator, data: Form) -> str:
        url = _field(data, "url")
        agg.set_paused(url, paused)
        return f"{'Paused' if paused else 'Resumed'} {url}"

    return handler


def _remove(agg: Aggregator, data: Form) -> str:
    removed = agg.remove_contributor(_field(data, "name"))
    return f"Removed {data['name']} and {removed} post(s)."


def _poll(agg: Aggregator, data: Form) -> str:
    summary = agg.update_feeds(include_not_due=True)
    agg.publish()
    return "Polled: " + summary.line()


def _send(agg: Aggregator, data: Form) -> str:
    return agg.send_digest().line()


def _unsubscribe(agg: Aggregator, data: Form) -> str:
    agg.remove_subscriber(_field(data, "email"))
    return f"Removed {data['email']}."


def _hiding(hidden: bool) -> Handler:
    def handler(agg: Aggregator, data: Form) -> str:
        url = _field(data, "url")
        agg.hide_post(url, hidden)
        return f"{'Hidden' if hidden else 'Shown again'}: {url}"

    return handler


def _add_post(agg: Aggregator, data: Form) -> str:
    added = agg.add_post(_field(data, "url"), data.get("contributor", "").strip() or None)
    if not added.new:
        return f"Already in the feed: “{added.title}”."
    return f"Added “{added.title}” by {added.contributor}; the outputs are republished."


#: the dashboard's buttons: action -> what it does, returning the note to show
ACTIONS: dict[str, Handler] = {
    "add": _add,
    "approve": _approve,
    "reject": _reject,
    "pause": _pausing(True),
    "resume": _pausing(False),
    "remove": _remove,
    "poll": _poll,
    "send": _send,
    "unsubscribe": _unsubscribe,
    "hide": _hiding(True),
    "show": _hiding(False),
    "add-post": _add_post,
}


async def login(request: Request) -> Response:
    if request.method != "POST":
        return render(request, "login.html")
    data = await checked_form(request)
    if not await limits(request).login_by_client.allow(request, client(request)):
        return message(request, "Too many attempts", "Please wait 15 minutes.", 429)
    account = await in_thread(
        aggregator(request).check_login, data.get("email", ""), data.get("password", "")
    )
    if account is None:
        return render(
            request,
            "login.html",
            status=401,
            error="Wrong email or password. Check both and try again.",
            email=data.get("email", "")[:320],
        )
    # a new session: nothing of the one before the login carries over
    request.session.clear()
    request.session["organiser"], request.session["sv"] = account
    request.session["sid"] = secrets.token_urlsafe(16)
    return redirect("/admin")


async def logout(request: Request) -> Response:
    """Logs the organiser out of every browser, not only this one."""
    await checked_form(request)
    address = await logged_in(request)
    if address is not None:
        await in_thread(aggregator(request).end_sessions, address)
    request.session.clear()
    return redirect("/")


#: the dashboard's parts an action can return to (its result is shown there)
PLACES = frozenset(
    [
        "top",
        "today",
        "attention",
        "registrations",
        "feeds",
        "posts",
        "subscribers",
        "add",
        "add-post",
    ]
)


def _place(data: Form) -> str:
    back = data.get("back", "")
    return back if back in PLACES else "top"


def _confirmation(agg: Aggregator, name: str, data: Form) -> dict[str, Any] | None:
    """The second step of an action that cannot be undone (None: no step needed)."""
    if data.get("confirmed") == "yes":
        return None
    if name == "send":
        date, posts, readers = agg.digest_outlook()
        lines = [
            f"The digest for {date.day} {date:%B %Y} would go now to {readers} "
            f"subscriber{'' if readers == 1 else 's'}, with {posts} post"
            f"{'' if posts == 1 else 's'}.",
            "An email cannot be taken back. Subscribers who already have today's digest "
            "do not get a second.",
        ]
        return {
            "title": "Send today's digest now?",
            "lines": lines,
            "yes": f"Yes, send it to {readers} subscriber{'' if readers == 1 else 's'}",
            "style": "",
            "fields": {},
        }
    if name == "remove":
        who = data.get("name", "").strip()
        if not who:
            return None  # the handler says what is missing
        found = [c for c in agg.contributor_summaries() if c.name == who]
        posts = found[0].posts if found else 0
        return {
            "title": f"Remove {who}?",
            "lines": [
                f"This removes {who}, their feeds and their {posts} post"
                f"{'' if posts == 1 else 's'} from the site, the feeds and future digests.",
                "It cannot be undone: to bring them back, add the blog again.",
            ],
            "yes": f"Yes, remove {who}",
            "style": "danger solid",
            "fields": {"name": who},
        }
    return None


def _dashboard_data(agg: Aggregator) -> dict[str, Any]:
    from ..outputs.charts import week_charts

    subscribers = agg.subscribers()
    posts, _more = agg.posts_page(1, 30, include_hidden=True)
    feeds = agg.status()
    picture = agg.week_picture()
    return {
        "feeds": feeds,
        "feed_count": sum(f.has_feed for f in feeds),
        "feeds_ok": sum(f.has_feed and f.ok for f in feeds),
        "attention": agg.attention(feeds),
        "picture": picture,
        "charts_list": week_charts(picture),
        "post_count": agg.post_count(),
        "registrations": agg.registrations(),
        "subscribers": subscribers,
        "confirmed": sum(s.active for s in subscribers),
        "unsubscribed": sum(s.unsubscribed_at is not None for s in subscribers),
        "posts": posts,
        "workers": [
            {
                "id": w.id,
                "command": w.command,
                "ago": max(0, int((agg.now() - w.last_seen_at).total_seconds())),
                "feeds": feeds,
            }
            for w, feeds in agg.workers()
        ],
    }


async def dashboard(request: Request) -> Response:
    if not await logged_in(request):
        return redirect("/admin/login")
    agg = aggregator(request)
    # gathering and rendering hundreds of feeds' rows is slow work: off the event loop
    return await in_thread(lambda: render(request, "admin.html", **_dashboard_data(agg)))


async def action(request: Request) -> Response:
    if not await logged_in(request):
        return message(request, "Log in first", "This needs an organiser login.", 403)
    data = await checked_form(request)
    name = request.path_params["action"]
    agg = aggregator(request)
    if name == "preview":
        return HTMLResponse(await in_thread(agg.preview_digest_html))
    handler = ACTIONS.get(name)
    if handler is None:
        return message(request, "Not found", "There is no such dashboard action.", 404)
    back = _place(data)
    step = await in_thread(_confirmation, agg, name, data)
    if step is not None:
        return await in_thread(
            lambda: render(request, "admin_confirm.html", action=name, back=back, **step)
        )
    try:
        note = await in_thread(handler, agg, data)
    except AggregatorError as e:
        return redirect("/admin", f"Could not do that: {e}", request, at=back, error=True)
    return redirect("/admin", note, request, at=back)


routes = [
    Route("/admin", dashboard),
    Route("/admin/login", login, methods=["GET", "POST"]),
    Route("/admin/logout", logout, methods=["POST"]),
    Route("/admin/{action}", action, methods=["POST"]),
]
