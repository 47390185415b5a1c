"""Security headers on every answer, as an ASGI middleware (no per-request task).

No page runs script: the policy allows none, inline or not. Styles are inline (the
pages and archived digests carry their own), images may come from posts' sites. The
dashboard is never cached (it shows subscribers' addresses)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_ALWAYS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
_PRIVATE = [(b"cache-control", b"no-store")]


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith("/admin")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not (private and k.lower() == b"cache-control")
                ]
                message["headers"] = headers + _ALWAYS + (_PRIVATE if private else [])
            await send(message)

        await self.app(scope, receive, with_headers)
