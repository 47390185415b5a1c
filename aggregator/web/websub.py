"""The WebSub callback (`/websub/<token>`): hubs verify our subscriptions with a GET and
push new content with a signed POST (see `pipeline.websub`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..errors import AggregatorError
from .support import aggregator, in_thread

if TYPE_CHECKING:
    from ..core import Aggregator

log = logging.getLogger(__name__)

PREFIX = "/websub/"


async def callback(request: Request) -> Response:
    agg, token = aggregator(request), request.path_params["token"]
    if request.method == "HEAD":  # a verification is a GET: HEAD changes nothing
        return Response(status_code=405, headers={"Allow": "GET, POST"})
    if request.method == "GET":
        params = dict(request.query_params)
        challenge = await in_thread(agg.websub.verify, token, params)
        if challenge is None:
            return PlainTextResponse("no such subscription", status_code=404)
        return PlainTextResponse(challenge)
    if not await in_thread(agg.websub.accepts, token):
        return Response(status_code=202)  # nothing read: no body to buffer for a stranger
    body = await request.body()  # at most polling.max_feed_bytes (see create_app)
    kind = request.headers.get("content-type", "")
    signature = request.headers.get("x-hub-signature", "")
    changed = await in_thread(agg.websub.receive, token, body, kind, signature)
    # 202 whatever it was: a hub learns nothing from our answer (WebSub 7.4)
    return Response(status_code=202, background=BackgroundTask(republish, agg) if changed else None)


def republish(agg: Aggregator) -> None:
    """After a push that changed the posts (files are replaced whole, so publishes that
    overlap leave whole files; the next one brings any it missed)."""
    try:
        agg.publish()
    except AggregatorError as e:
        log.error("publish after a push failed: %s", e)


routes = [Route(PREFIX + "{token}", callback, methods=["GET", "POST"])]
