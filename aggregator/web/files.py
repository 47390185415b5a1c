"""The published files (`feed.atom`, `rss.xml`, `feed.json`, the OPML, the archived
digests) as the app answers them: kept in memory with their validators, answered 304
when a reader already has them.

A feed reader's conditional GET is most of what a feed's address gets, so
`answer_from_memory` answers a file already in memory before the rest of the app
(middleware, sessions, routing, forms) is entered: the validators, and a `stat` now and
then, a few microseconds. Anything it does not know yet goes on to the route
(`public.output_file`), which checks the path is a regular file inside the output folder,
reads it and keeps it; only a file read that way is ever answered from memory.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..outputs.syndication import FORMATS
from .middleware import ALWAYS

#: media types by published name (a `text/` type says its charset, as Starlette would)
MEDIA = {**FORMATS, "contributors.opml": "text/x-opml; charset=utf-8"}
_DIGEST_PAGE = "text/html; charset=utf-8"
_READS = ("GET", "HEAD")

Headers = list[tuple[bytes, bytes]]


def media_type(name: str) -> str | None:
    """The media type of published file `name`, or None when `name` is no published file."""
    if name.startswith("digests/") and name.endswith(".html"):
        return _DIGEST_PAGE
    return MEDIA.get(name)


@dataclass(frozen=True)
class OutputFile:
    """A published file as read once: its body and validators, for as long as the file
    on disk is the same one (same inode, time and size: files are replaced whole)."""

    identity: tuple[int, int, int]
    body: bytes
    etag: str
    mtime: int
    #: ETag, Last-Modified and Cache-Control, as sent (a tuple: shared by every answer)
    validators: tuple[tuple[bytes, bytes], ...]

    @classmethod
    def read(cls, path: Path) -> OutputFile:
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())  # the validators of the very bytes read
            body = handle.read()
        digest = hashlib.sha256(f"{stat.st_mtime_ns}-{stat.st_size}".encode()).hexdigest()
        etag = f'"{digest[:20]}"'
        modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        return cls(
            identity=(stat.st_ino, stat.st_mtime_ns, stat.st_size),
            body=body,
            etag=etag,
            mtime=int(stat.st_mtime),
            validators=(
                (b"etag", etag.encode()),
                (b"last-modified", modified.encode()),
                (b"cache-control", b"public, max-age=300"),
            ),
        )

    def not_modified(self, if_none_match: str | None, if_modified_since: str | None) -> bool:
        """Whether a reader holding these validators already has this file (RFC 9110
        13.1: If-None-Match, when sent, decides alone)."""
        if if_none_match is not None:
            tags = if_none_match.strip()
            return tags == "*" or self.etag in [t.strip() for t in tags.split(",")]
        if if_modified_since:
            try:
                since = email.utils.parsedate_to_datetime(if_modified_since).timestamp()
            except (TypeError, ValueError):
                return False
            return self.mtime <= since
        return False

    def answer(
        self, media: str, if_none_match: str | None, if_modified_since: str | None
    ) -> tuple[int, Headers, bytes]:
        """Status, headers and body of the answer to a GET of this file."""
        if self.not_modified(if_none_match, if_modified_since):
            return 304, list(self.validators), b""
        length = str(len(self.body)).encode()
        headers = [(b"content-type", media.encode()), (b"content-length", length)]
        return 200, [*headers, *self.validators], self.body


class OutputFiles:
    """The published files the app answers, kept in memory by name: an answer costs at
    most one `stat` (so a file published by another process is seen within `RECHECK`
    seconds), not a read, a hash and resolving the path again. Only a file read under its
    own plain name is kept (not as `digests/../feed.atom` or `digests/./x.html`), so never
    more files than the folder holds."""

    #: files larger than this are read for each answer
    MAX_BYTES = 8 * 1024 * 1024
    #: seconds a file in memory is taken to be the one on disk without a new `stat`: a
    #: fifth of the work of a conditional GET under load, and a delay no one sees
    RECHECK = 0.1

    def __init__(self, output_dir: Path) -> None:
        self._root = str(output_dir)
        self._files: dict[str, OutputFile] = {}
        #: when each file in memory was last found unchanged on disk (monotonic seconds)
        self._checked: dict[str, float] = {}

    def current(self, name: str) -> OutputFile | None:
        """The file from memory if it is still the one read (cheap: for the event loop)."""
        known = self._files.get(name)
        if known is None:
            return None
        now = time.monotonic()
        if now - self._checked.get(name, -self.RECHECK) < self.RECHECK:
            return known
        try:
            stat = os.stat(os.path.join(self._root, name))
        except OSError:
            return None
        if known.identity != (stat.st_ino, stat.st_mtime_ns, stat.st_size):
            return None
        self._checked[name] = now
        return known

    def read(self, name: str, path: Path) -> OutputFile:
        """Read `name`, found at `path` (checked to be in the folder; blocking: run it in
        a thread), and keep it if it is small and `path` is its own place."""
        found = OutputFile.read(path)
        own = os.path.normpath(name) == name and path == Path(self._root).resolve() / name
        if own and len(found.body) <= self.MAX_BYTES:
            self._files[name] = found
            self._checked[name] = time.monotonic()
        return found


def conditional_file(request: Request, found: OutputFile, media: str) -> Response:
    """Serve an output file with ETag/Last-Modified, answering 304 when unchanged."""
    status, headers, body = found.answer(
        media, request.headers.get("if-none-match"), request.headers.get("if-modified-since")
    )
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


async def answer_from_memory(files: OutputFiles, scope: Scope, send: Send) -> bool:
    """Answer a GET or HEAD of a published file already in memory and unchanged on disk,
    with the headers the route gives (the security headers too); False when it is not
    one, for the app to answer. Called before any middleware: see `WebApp`."""
    if scope["type"] != "http" or scope["method"] not in _READS:
        return False
    name = scope["path"][1:]
    media = media_type(name)
    found = files.current(name) if media else None
    if found is None or media is None:
        return False
    if_none_match = if_modified_since = None
    for key, value in scope["headers"]:
        if key == b"if-none-match":
            if_none_match = value.decode("latin-1")
        elif key == b"if-modified-since":
            if_modified_since = value.decode("latin-1")
    status, headers, body = found.answer(media, if_none_match, if_modified_since)
    headers += ALWAYS
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return True


class WebApp(Starlette):
    """The app: a feed reader's conditional GET of a published file is answered before
    any middleware (it needs no session, routing or form), everything else by Starlette."""

    files: OutputFiles

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await answer_from_memory(self.files, scope, send):
            await super().__call__(scope, receive, send)
