"""The request line and headers are limited by the HTTP protocol itself (api/http_protocol.py):
past REZERV_API_MAX_HEADER_BYTES uvicorn answers 431 and closes, before reading the rest."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest

from api.http_protocol import LimitedHttpToolsProtocol, header_limit
from tests.uvicorn_server import serving


async def hello(scope: dict[str, object], receive: object, send: object) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"hello"})  # type: ignore[operator]


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    monkeypatch.setenv("REZERV_API_MAX_HEADER_BYTES", "4096")
    header_limit.cache_clear()
    async with serving(hello, LimitedHttpToolsProtocol) as port:
        yield port
    header_limit.cache_clear()


def exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)  # the server may close before all of a huge request is sent
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"hello" in b"".join(chunks):
                break
        return b"".join(chunks)


async def test_an_ordinary_request_passes(server: int) -> None:
    reply = await asyncio.to_thread(exchange, server, b"GET / HTTP/1.1\r\nHost: t\r\nX-Small: abc\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20_000_000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(60)) + b"\r\n",
        b"GET /" + b"p" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
    ids=["one huge header", "many headers", "a long request line"],
)
async def test_headers_over_the_limit_get_431_and_the_connection_closes(server: int, request_bytes: bytes) -> None:
    assert header_limit() == 4096
    reply = await asyncio.to_thread(exchange, server, request_bytes)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
    assert b"connection: close" in reply.lower()
