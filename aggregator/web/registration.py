"""The public form where a contributor registers their blog for approval."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import AggregatorError, FieldError
from .support import aggregator, checked_form, client, in_thread, limits, render, too_many


async def register(request: Request) -> Response:
    if request.method != "POST":
        return render(request, "register.html", found=None)
    data = await checked_form(request)
    if not await limits(request).register_by_client.allow(request, client(request)):
        return too_many(request)
    agg = aggregator(request)
    try:
        found = await in_thread(
            agg.register_blog, data.get("name", ""), data.get("url", ""), data.get("email", "")
        )
    except FieldError as e:
        return render(
            request,
            "register.html",
            status=400,
            found=None,
            errors={e.field: str(e)},
            detail=e.detail,
            values=data,
        )
    except AggregatorError as e:
        return render(
            request, "register.html", status=400, found=None, errors={"url": str(e)}, values=data
        )
    return render(request, "register.html", found=found)


routes = [Route("/register", register, methods=["GET", "POST"])]
