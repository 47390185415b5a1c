"""Subscribing to the digest (double opt-in), confirming, and unsubscribing.

Only POST changes anything: a GET or HEAD of a link (mail scanners and link previews
fetch them) shows a page with a button. The confirming and one-click unsubscribe POSTs
(RFC 8058) need no CSRF token: their URLs hold the subscriber's secret token."""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import normalise_email
from ..errors import AggregatorError
from .support import (
    address_key,
    aggregator,
    checked_form,
    client,
    in_thread,
    limits,
    message,
    render,
    too_many,
)

#: RFC 5321's limit on an address; longer input is not one
MAX_ADDRESS = 320


async def subscribe(request: Request) -> Response:
    agg = aggregator(request)
    data = await checked_form(request)
    limit = limits(request)
    if not await limit.subscribe_by_client.allow(request, client(request)):
        return too_many(request)
    try:
        raw = data.get("email", "")
        if len(raw) > MAX_ADDRESS:
            raise AggregatorError("too long for an email address")
        address = normalise_email(raw)
    except AggregatorError:
        return message(
            request, "Check the address", "That does not look like an email address.", 400
        )
    # keyed once valid and normalised: junk keys nothing, look-alikes share one key
    if not await limit.subscribe_by_address.allow(request, address_key(address)):
        return too_many(request)
    site = agg.settings.event.site_url
    await in_thread(agg.request_subscription, address, lambda t: f"{site}confirm/{t}")
    # the same answer, at once, whether or not the address was known and whatever the
    # mail server is doing: the confirmation waits in the outbox, sent after this answer
    # (and retried by the worker if the mail server is away)
    answer = message(
        request,
        "Check your inbox",
        f"If {address} is not subscribed yet, a confirmation link is on its way.",
    )
    answer.background = BackgroundTask(agg.send_outbox)
    return answer


async def confirm(request: Request) -> Response:
    """GET (and HEAD, which mail scanners send) shows a button; only its POST subscribes."""
    agg = aggregator(request)
    token = request.path_params["token"]
    invalid = (
        "This confirmation link is not valid (any more). To get the digest, subscribe again "
        "on the home page."
    )
    if request.method != "POST":
        address = await in_thread(agg.subscription_to_confirm, token)
        if address is None:
            return message(request, "Link not valid", invalid, 404)
        return render(request, "confirm.html", token=token, email=address)
    address = await in_thread(agg.confirm_subscription, token)
    if address is None:
        return message(request, "Link not valid", invalid, 404)
    name = agg.settings.event.name
    return message(request, "Subscribed", f"{address} will get the {name} digest every morning.")


async def unsubscribe(request: Request) -> Response:
    agg = aggregator(request)
    token = request.path_params["token"]
    if request.method != "POST":  # GET and HEAD only show the page
        known = await in_thread(agg.subscriber_for_token, token)
        if known is None:
            return message(request, "Link not valid", "This link is not valid.", 404)
        return render(request, "unsubscribe.html", token=token, email=known)
    # RFC 8058 one-click (List-Unsubscribe=One-Click) or the page's button
    address = await in_thread(agg.unsubscribe, token)
    if address is None:
        return message(request, "Link not valid", "This link is not valid.", 404)
    return message(
        request,
        "Unsubscribed",
        f"{address} will not get the {agg.settings.event.name} digest any more.",
    )


routes = [
    Route("/subscribe", subscribe, methods=["POST"]),
    Route("/confirm/{token}", confirm, methods=["GET", "POST"]),
    Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
]
