"""The WebSub callback (`/websub/<token>`): hubs verify our subscriptions with a GET and
push new content with a signed POST (see `pipeline.websub`)."""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .support import aggregator, in_thread

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
    body = await request.body()  # at most polling.max_feed_bytes (see create_app)
    kind = request.headers.get("content-type", "")
    signature = request.headers.get("x-hub-signature", "")
    changed = await in_thread(agg.websub.receive, token, body, kind, signature)
    # 202 whatever it was: a hub learns nothing from our answer (WebSub 7.4)
    return Response(status_code=202, background=BackgroundTask(agg.publish) if changed else None)


routes = [Route(PREFIX + "{token}", callback, methods=["GET", "POST"])]
