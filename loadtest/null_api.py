"""An HTTP server that answers the flash sale's two routes and does nothing else.

    python -m loadtest.null_api PORT                  # its own protocol (httptools, uvloop)
    uvicorn loadtest.null_api:asgi_app --port PORT   # the same answers through uvicorn and ASGI

`loadtest/generator_ceiling.py` points the flash sale's Locust users at it to measure what the load
generator itself can drive on this machine. It runs on uvloop with httptools, in its own process,
and imports nothing of Locust (whose gevent patches the standard library on import). It checks
nothing and stores nothing: never a product path.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
import time
from typing import Any, cast

import httptools


def reply(method: bytes, url: bytes, serial: int, now_ms: int) -> tuple[int, bytes, bytes]:
    """(status, reason, JSON body) for one request: a hold gets a 201 shaped like rezerv's (a hold
    id, an amount, an expiry), a booking's read a 200, anything else a 404."""
    if method == b"POST" and url.endswith(b"/holds"):
        body = {"hold_id": f"null-{serial}", "status": "HELD", "amount": 100, "expires_at_ms": now_ms + 600_000}
        return 201, b"Created", json.dumps(body).encode()
    if method == b"GET" and url.startswith(b"/bookings/"):
        hold_id = url.rsplit(b"/", 1)[-1].decode("ascii", "replace")
        return 200, b"OK", json.dumps({"hold_id": hold_id, "status": "CONFIRMED"}).encode()
    return 404, b"Not Found", b"{}"


def answer(method: bytes, url: bytes, serial: int, now_ms: int) -> bytes:
    """The whole HTTP/1.1 response to one request (`reply`'s), head and body."""
    status, reason, body = reply(method, url, serial, now_ms)
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % (status, reason, len(body)) + body


class NullApi(asyncio.Protocol):
    """One keep-alive connection: parse each request with httptools and answer it at once."""

    serials = itertools.count(1)

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's, not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""

    def on_url(self, url: bytes) -> None:  # may come in pieces
        self.url += url

    def on_message_complete(self) -> None:
        if self.transport is None:
            return
        method = self.parser.get_method()
        self.transport.write(answer(method, self.url, next(self.serials), int(time.time() * 1000)))


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same answers as an ASGI application, for uvicorn (`--server uvicorn` of the ceiling):
    the difference to `NullApi` is what uvicorn's protocol and the ASGI cycle cost per request."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    now_ms = int(time.time() * 1000)
    status, _reason, body = reply(scope["method"].encode(), scope["path"].encode(), next(NullApi.serials), now_ms)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(NullApi, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))
