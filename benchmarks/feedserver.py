"""The benchmark's feed server: N generated feeds on loopback, in a process of its own.

    python benchmarks/feedserver.py [--feeds 500] [--entries 25] [--latency-ms 50] [--hosts 1]

Prints `port <n>` when it listens, on 127.0.0.1 and, with --hosts N, on 127.0.0.2 to
127.0.0.N too (the same port): feed i is meant to be read from host i % N + 1, so that
a poll sees N hosts, as the real web has many. `GET /_stats` gives how many times each
feed was fetched, as JSON (`/_stats?reset` then starts counting afresh). Every
answer waits the latency (a timer, not a thread), has an ETag and Last-Modified, is
gzipped when the client accepts it and is a 304 when the client's If-None-Match
matches. `GET /_change` gives every tenth feed
one new entry. It is a minimal HTTP/1.1 server on asyncio so that it costs little CPU:
the figures should be the clients', not the server's (the project's test server, a
thread per connection, took as much CPU as the poll it served).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gzip
import hashlib
import json


def feed_body(index: int, entries: int) -> bytes:
    items = []
    for n in range(entries):
        tag = (
            "<category>Co-production Week</category>" if n % 5 == 0 else "<category>misc</category>"
        )
        items.append(
            f"<item><title>Post {n} of blog {index}</title><guid>b{index}-p{n}</guid>"
            f"<link>http://blog{index}.example/p/{n}</link>"
            f"<pubDate>Mon, 03 Jul 2017 {n % 24:02d}:00:00 +0000</pubDate>{tag}"
            "<description><![CDATA[<p>"
            + ("Words about the week and more. " * 40)
            + f"blog{index}post{n}</p>]]></description></item>"
        )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Blog {index}</title>'
        f"<link>http://blog{index}.example/</link>{''.join(items)}</channel></rss>"
    ).encode()


def changed_body(index: int, entries: int) -> bytes:
    return feed_body(index, entries).replace(
        b"<item>",
        b"<item><title>New</title><guid>new-%d</guid>"
        b"<category>Co-production Week</category><description>x</description></item><item>" % index,
        1,
    )


class _Variant:
    def __init__(self, body: bytes):
        self.body = body
        self.gzipped = gzip.compress(body, 6)
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


class FeedServer:
    def __init__(self, feeds: int, entries: int, latency: float):
        self.latency = latency
        self.fetched: collections.Counter[str] = collections.Counter()
        self.feeds = {f"/feed/{i}": _Variant(feed_body(i, entries)) for i in range(feeds)}
        self.changed = {
            f"/feed/{i}": _Variant(changed_body(i, entries)) for i in range(0, feeds, 10)
        }

    def answer(self, path: str, headers: dict[str, str]) -> bytes:
        if path.startswith("/_stats"):
            body = json.dumps(self.fetched).encode()
            if path.endswith("?reset"):
                self.fetched.clear()
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        if path == "/_change":
            self.feeds.update(self.changed)
            return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        feed = self.feeds.get(path)
        self.fetched[path] += 1
        if feed is None:
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        common = f"ETag: {feed.etag}\r\nLast-Modified: Mon, 03 Jul 2017 08:00:00 GMT\r\n"
        if headers.get("if-none-match") == feed.etag:
            return f"HTTP/1.1 304 Not Modified\r\n{common}Content-Length: 0\r\n\r\n".encode()
        body, encoding = feed.body, ""
        if "gzip" in headers.get("accept-encoding", ""):
            body, encoding = feed.gzipped, "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
            f"{common}{encoding}Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def protocol(self) -> asyncio.Protocol:
        server = self

        class _Connection(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport
                self.buffer = b""

            def data_received(self, data: bytes) -> None:
                self.buffer += data
                loop = asyncio.get_running_loop()
                while b"\r\n\r\n" in self.buffer:  # GET requests only: no bodies
                    head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
                    lines = head.decode("latin-1").split("\r\n")
                    path = lines[0].split(" ")[1]
                    headers = {}
                    for line in lines[1:]:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    loop.call_later(server.latency, self.reply, path, headers)

            def reply(self, path: str, headers: dict[str, str]) -> None:
                if not self.transport.is_closing():
                    self.transport.write(server.answer(path, headers))

        return _Connection()


async def serve(feeds: int, entries: int, latency: float, port: int, hosts: int = 1) -> None:
    server = FeedServer(feeds, entries, latency)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server.protocol, "127.0.0.1", port, backlog=4096)
    port = listener.sockets[0].getsockname()[1]
    for n in range(2, hosts + 1):  # all of 127.0.0.0/8 is loopback
        await loop.create_server(server.protocol, f"127.0.0.{n}", port, backlog=4096)
    print("port", port, flush=True)
    await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--entries", type=int, default=25)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hosts", type=int, default=1, help="listen on 127.0.0.1 to .N")
    args = parser.parse_args()
    asyncio.run(serve(args.feeds, args.entries, args.latency_ms / 1000, args.port, args.hosts))


if __name__ == "__main__":
    main()
