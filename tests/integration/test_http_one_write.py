"""The API's HTTP protocol sends a response's head and body in one TCP segment, where uvicorn's
own sends two (api/one_write.py). Counted by the client's kernel (TCP_INFO's data_segs_in)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.http_protocol import LimitedHttpToolsProtocol
from tests.tcp_segments import segments_of_one_response
from tests.uvicorn_server import serving

BODY = b'{"status":"HELD"}'


async def answer(scope: dict[str, object], receive: object, send: object) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 201, "headers": headers})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": BODY})  # type: ignore[operator]


async def streamed(scope: dict[str, object], receive: object, send: object) -> None:
    """A head, then a body that comes later (as server-sent events do)."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})  # type: ignore[operator]
    await asyncio.sleep(0.3)
    await send({"type": "http.response.body", "body": b"late"})  # type: ignore[operator]


Serve = Callable[[object, type], Awaitable[int]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(app: object, protocol: type) -> int:
            return await stack.enter_async_context(serving(app, protocol))

        yield start


def one_hold(port: int) -> tuple[bytes, int]:
    request = b"POST /holds HTTP/1.1\r\nHost: t\r\ncontent-length: 2\r\n\r\n{}"
    return segments_of_one_response("127.0.0.1", port, request, BODY)


async def test_a_small_response_reaches_the_client_in_one_segment(serve: Serve) -> None:
    port = await serve(answer, LimitedHttpToolsProtocol)
    for _ in range(5):
        reply, segments = await asyncio.to_thread(one_hold, port)
        assert reply.startswith(b"HTTP/1.1 201")
        assert reply.endswith(BODY)
        assert segments == 1


async def test_uvicorn_s_own_protocol_sends_the_same_response_in_two(serve: Serve) -> None:
    """The measure above can tell the difference: the same server without the held head."""
    port = await serve(answer, HttpToolsProtocol)
    counts = [(await asyncio.to_thread(one_hold, port))[1] for _ in range(5)]
    assert max(counts) == 2, counts


async def test_a_head_whose_body_comes_later_is_not_kept_waiting_for_it(serve: Serve) -> None:
    port = await serve(streamed, LimitedHttpToolsProtocol)

    def head_then_body() -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
            sock.settimeout(0.2)  # the body comes after 0.3 s: the head must come before it
            head = sock.recv(65536)
            sock.settimeout(5)
            rest = b""
            while not rest.endswith(b"late\r\n0\r\n\r\n"):
                rest += sock.recv(65536)
            return head, rest

    head, rest = await asyncio.to_thread(head_then_body)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"late" not in head
    assert b"late" in rest
