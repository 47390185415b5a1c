"""A WebSub hub on loopback that follows the W3C Recommendation closely enough to test a
subscriber against: it takes subscription requests (202), verifies intent with a GET to
the callback carrying hub.mode, hub.topic, hub.challenge and hub.lease_seconds (the
subscription holds only if the callback echoes the challenge), and distributes content
to each verified subscriber with X-Hub-Signature: sha256=HMAC(secret, body)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Subscriber:
    callback: str
    topic: str
    secret: str | None
    lease_seconds: int


class Hub:
    def __init__(self) -> None:
        self.subscribers: dict[tuple[str, str], Subscriber] = {}
        self.requests: list[dict[str, str]] = []
        self.verifications: list[tuple[str, int, str]] = []  # (mode, status, body)
        hub = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                hub.requests.append(form)
                if form.get("hub.mode") not in ("subscribe", "unsubscribe") or not form.get(
                    "hub.callback"
                ):
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                threading.Thread(target=hub._verify, args=(form,), daemon=True).start()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.verified = threading.Event()

    def __enter__(self) -> Hub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _verify(self, form: dict[str, str]) -> None:
        mode, topic, callback = form["hub.mode"], form["hub.topic"], form["hub.callback"]
        challenge = secrets.token_urlsafe(16)
        query = urllib.parse.urlencode(
            {
                "hub.mode": mode,
                "hub.topic": topic,
                "hub.challenge": challenge,
                "hub.lease_seconds": form.get("hub.lease_seconds", "86400"),
            }
        )
        sep = "&" if "?" in callback else "?"
        try:
            with urllib.request.urlopen(callback + sep + query, timeout=10) as answer:
                status, body = answer.status, answer.read().decode()
        except urllib.error.HTTPError as e:
            status, body = e.code, ""
        self.verifications.append((mode, status, body))
        if 200 <= status < 300 and body == challenge:
            key = (callback, topic)
            if mode == "subscribe":
                lease = int(form.get("hub.lease_seconds", "86400"))
                self.subscribers[key] = Subscriber(callback, topic, form.get("hub.secret"), lease)
            else:
                self.subscribers.pop(key, None)
        self.verified.set()

    def verify_with(self, callback: str, **params: str) -> tuple[int, str]:
        """A verification GET of the test's own making (a wrong topic, say)."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(callback + "?" + query, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""

    def distribute(
        self, topic: str, body: bytes, content_type: str, *, sign_with: str | None = "secret"
    ) -> list[int]:
        """Push `body` to every subscriber of `topic`; `sign_with=None` sends it unsigned,
        any other string than "secret" signs with that (wrong) key."""
        statuses = []
        for sub in [s for s in self.subscribers.values() if s.topic == topic]:
            headers = {"Content-Type": content_type}
            key = sub.secret if sign_with == "secret" else sign_with
            if key is not None:
                digest = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
                headers["X-Hub-Signature"] = f"sha256={digest}"
            request = urllib.request.Request(sub.callback, data=body, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as answer:
                statuses.append(answer.status)
        return statuses
