"""A small HTTP server on loopback that serves fixed responses.

The demo serves its sample blogs with it, and the tests serve feeds with it:
real HTTP over a real socket, with ETag/Last-Modified and 304 answers like a
well-behaved blog host. Handlers may also be functions, to misbehave on purpose.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Response:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds to wait before answering
    delay: float = 0.0
    #: answer conditional requests with 304 when the ETag/Last-Modified match
    conditional: bool = True


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: dict[str, str]
    method: str = "GET"
    body: bytes = b""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up early are normal here


Handler = Callable[[BaseHTTPRequestHandler], Response | None]

_LAST_MODIFIED = "Mon, 03 Jul 2017 08:00:00 GMT"


class LoopbackSite:
    """`with LoopbackSite() as site: site.routes["/feed"] = Response(...)`; `site.url("/feed")`."""

    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, Response | Handler] = {}
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        site = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out as separate writes: without TCP_NODELAY, Nagle and
            # delayed ACKs add ~40 ms to every answer on a kept-alive connection
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site._serve(self)

            def do_POST(self) -> None:  # answered like GET; the body is kept
                site._serve(self)

        self.server = _QuietServer((host, 0), _Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        # an AF_INET/AF_INET6 socket's address holds a str host (the stubs also allow bytes)
        assert isinstance(host, str)
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> LoopbackSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LoopbackSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        body = b""
        if handler.command == "POST":
            body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        seen = SeenRequest(handler.path, dict(handler.headers.items()), handler.command, body)
        with self._lock:
            self.requests.append(seen)
        route = self.routes.get(handler.path)
        response = route(handler) if callable(route) else route
        if response is None:
            if callable(route):
                return  # the handler wrote its own answer
            response = Response(b"not found", status=404, content_type="text/plain")
        if response.delay:
            time.sleep(response.delay)
        headers = {"Content-Type": response.content_type, **response.headers}
        if response.status == 200 and response.conditional:
            etag = '"' + hashlib.sha256(response.body).hexdigest()[:16] + '"'
            headers.setdefault("ETag", etag)
            headers.setdefault("Last-Modified", _LAST_MODIFIED)
            if handler.headers.get("If-None-Match") == headers["ETag"] or (
                "If-None-Match" not in handler.headers
                and handler.headers.get("If-Modified-Since") == headers["Last-Modified"]
            ):
                handler.send_response(304)
                for name in ("ETag", "Last-Modified"):
                    handler.send_header(name, headers[name])
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
        body = response.body
        handler.send_response(response.status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.wfile.write(body)


class MailSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives.

    `refuse` holds addresses it answers 550 for (refused for good), `busy` those it
    answers 451 for (try again later), and `reject_content` the answer it gives, once the
    content is sent, to a message for an address (a spam filter's 554, say);
    `refuse_sender`, when set, is its answer to every sender (a relay that does not take
    our address): to test failed deliveries. `delay` makes it take that long over each
    message.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, delay: float = 0):
        import asyncio

        from aiosmtpd.controller import Controller

        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse: set[str] = set()
        self.busy: set[str] = set()
        self.reject_content: dict[str, str] = {}
        self.refuse_sender: str | None = None
        sink = self

        class _Handler:
            async def handle_MAIL(self, server, session, envelope, address, options):
                if sink.refuse_sender:
                    return sink.refuse_sender
                envelope.mail_from = address
                envelope.mail_options.extend(options)
                return "250 OK"

            async def handle_RCPT(self, server, session, envelope, address, options):
                if address.lower() in sink.refuse:
                    return "550 5.1.1 mailbox unavailable"
                if address.lower() in sink.busy:
                    return "451 4.3.0 try again later"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                await asyncio.sleep(delay)  # a slow server (`delay` seconds a message)
                for address in envelope.rcpt_tos:
                    if address.lower() in sink.reject_content:
                        return sink.reject_content[address.lower()]
                sink.messages.append((list(envelope.rcpt_tos), envelope.content))
                return "250 Message accepted"

        # aiosmtpd cannot listen on port 0 (it probes its own port): pick a free one
        if port is None:
            with socket.socket() as probe:
                probe.bind((host, 0))
                port = int(probe.getsockname()[1])
        self.port: int = port
        self.controller = Controller(_Handler(), hostname=host, port=self.port)

    def start(self) -> MailSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
