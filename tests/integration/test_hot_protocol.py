"""The HTTP protocol answers a plainly hot request itself, below ASGI (api/hot_cycle.py), and
what it answers is what the whole application answers.

Two APIs, each served by uvicorn with the API's protocol over a real socket: one with the hot
path, one without (api/hot_routes.py), each over its own, identically prepared shards (the twins
of tests/unit/api/test_hot_routes.py). The same requests get the same status, body and headers;
the plain ones never reach the application's ASGI entry, the others do; and the connection
handling is uvicorn's: keep-alive, pipelining, `Connection: close`, HTTP/1.0.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from api.edge import Edge
from api.http_protocol import LimitedHttpToolsProtocol
from tests.unit.api import test_hot_routes as hot_routes
from tests.unit.api.conftest import in_days
from tests.unit.api.test_hot_routes import Twins, twin_apps
from tests.uvicorn_server import serving

# the headers the ASGI twins compare, and whether the connection ends with the response
COMPARED_HEADERS = (*(name.encode() for name in hot_routes.COMPARED_HEADERS), b"connection")


@dataclass
class Counting:
    """An ASGI wrapper that counts the requests reaching the application (uvicorn's own wrappers
    hold the app as `.app` too, which is how the protocol finds the edge)."""

    app: Edge
    calls: int = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await self.app(scope, receive, send)


@dataclass
class Served:
    port: int
    app: Counting


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    closed: bool = False  # the server closed the connection after it

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)

    def comparable(self) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        try:
            body: Any = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            body = self.body
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k not in hot_routes.TIME_DEPENDENT}
        return self.status, body, sorted(h for h in self.headers if h[0] in COMPARED_HEADERS)


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sent: list[bytes] = field(default_factory=list)

    async def send(self, *requests: bytes) -> list[Response]:
        """Send `requests` in one write (pipelined when more than one), read their responses."""
        self.writer.write(b"".join(requests))
        await self.writer.drain()
        return [await self.response() for _ in requests]

    async def response(self) -> Response:
        async with asyncio.timeout(10):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = []
            for line in lines[1:]:
                if line:
                    name, value = line.split(":", 1)
                    headers.append((name.strip().lower().encode(), value.strip().encode("latin-1")))
            length = int(next(v for k, v in headers if k == b"content-length"))
            body = await self.reader.readexactly(length)
            closed = False
            if (b"connection", b"close") in headers:
                closed = await self.reader.read(1) == b""
        return Response(status, headers, body, closed)

    def close(self) -> None:
        self.writer.close()


def request(
    method: str,
    path: str,
    token: str,
    body: bytes | None = None,
    *,
    key: str | None = None,
    content_type: str = "application/json",
    version: str = "1.1",
    extra: str = "",
) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: rezerv"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if key is not None:
        lines.append(f"Idempotency-Key: {key}")
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


@dataclass
class Pair:
    twins: Twins
    hot: Served
    plain: Served

    def token(self, subject: str, *roles: str) -> str:
        return self.twins.token(subject, *roles)["Authorization"].removeprefix("Bearer ")

    async def connect(self, served: Served) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        return Connection(reader, writer)

    async def both(self, raw: bytes) -> tuple[Response, Response]:
        replies = []
        for served in (self.hot, self.plain):
            connection = await self.connect(served)
            try:
                replies.append((await connection.send(raw))[0])
            finally:
                connection.close()
        return replies[0], replies[1]


@pytest.fixture(scope="module")
async def pair() -> AsyncIterator[Pair]:
    async with twin_apps() as twins, contextlib.AsyncExitStack() as stack:
        served = []
        for twin in (twins.hot, twins.plain):
            assert isinstance(twin.http.app, Edge)
            app = Counting(twin.http.app)
            served.append(Served(await stack.enter_async_context(serving(app, LimitedHttpToolsProtocol)), app))
        yield Pair(twins, served[0], served[1])


HOLD = orjson.dumps({"quantities": {"standard": 1}})

# (what, method, path, body, key, token's subject, content type); the plain cases come first
CASES: list[tuple[str, str, str, bytes | None, str | None, str, str]] = [
    ("a plain hold", "POST", "/events/e1/holds", HOLD, "p-1", "alice", "application/json"),
    (
        "a car hold",
        "POST",
        "/cars/c1/holds",
        orjson.dumps({"start": in_days(50), "end": in_days(52)}),
        "p-2",
        "alice",
        "application/json",
    ),
    ("a read of one's booking", "GET", "/bookings/alices", None, None, "alice", "application/json"),
    ("a read of another's booking", "GET", "/bookings/bobs", None, None, "alice", "application/json"),
    ("a read of no booking", "GET", "/bookings/missing", None, None, "alice", "application/json"),
    (
        "sold out",
        "POST",
        "/events/tiny/holds",
        orjson.dumps({"quantities": {"std": 2}}),
        "p-3",
        "alice",
        "application/json",
    ),
    ("an unknown event", "POST", "/events/nope/holds", HOLD, "p-4", "alice", "application/json"),
    ("invalid JSON", "POST", "/events/e1/holds", b'{"quantities": {', "p-5", "alice", "application/json"),
    (
        "an unknown tier",
        "POST",
        "/events/e1/holds",
        orjson.dumps({"quantities": {"balcony": 1}}),
        "p-6",
        "alice",
        "application/json",
    ),
    ("no Idempotency-Key", "POST", "/events/e1/holds", HOLD, None, "alice", "application/json"),
    ("text/plain", "POST", "/events/e1/holds", HOLD, "p-7", "alice", "text/plain"),
    ("no token", "POST", "/events/e1/holds", HOLD, "p-8", "", "application/json"),
    ("a bad id", "GET", "/bookings/bad!id", None, None, "alice", "application/json"),
    ("a query string", "GET", "/bookings/alices?x=1", None, None, "alice", "application/json"),
    ("an escaped path", "GET", "/bookings/alice%73", None, None, "alice", "application/json"),
]
BELOW_ASGI = {
    "a plain hold",
    "a car hold",
    "a read of one's booking",
    "a read of another's booking",
    "a read of no booking",
    "sold out",
    "an unknown event",
    "an unknown tier",
}


@pytest.mark.parametrize(
    ("what", "method", "path", "body", "key", "who", "content_type"), CASES, ids=[c[0] for c in CASES]
)
async def test_a_request_is_answered_by_the_protocol_as_the_application_answers_it(
    pair: Pair, what: str, method: str, path: str, body: bytes | None, key: str | None, who: str, content_type: str
) -> None:
    token = pair.token(who) if who else ""
    raw = request(method, path, token, body, key=key, content_type=content_type)
    calls = pair.hot.app.calls
    hot, plain = await pair.both(raw)
    assert hot.comparable() == plain.comparable()
    assert hot.header(b"date") is not None, "uvicorn's default headers are sent"
    below = pair.hot.app.calls == calls
    assert below == (what in BELOW_ASGI), f"{what}: answered below ASGI: {below}"


async def test_a_retry_below_asgi_gets_the_same_hold(pair: Pair) -> None:
    raw = request("POST", "/events/e1/holds", pair.token("alice"), HOLD, key="retried")
    first, _ = await pair.both(raw)
    again, _ = await pair.both(raw)
    assert (first.status, again.status) == (201, 201)
    assert orjson.loads(first.body)["hold_id"] == orjson.loads(again.body)["hold_id"]


async def test_one_connection_carries_requests_one_after_another_and_pipelined(pair: Pair) -> None:
    token = pair.token("alice")
    connection = await pair.connect(pair.hot)
    try:
        one = await connection.send(request("POST", "/events/e1/holds", token, HOLD, key="ka-1"))
        assert one[0].status == 201
        pipelined = await connection.send(
            request("POST", "/events/e1/holds", token, HOLD, key="ka-2"),
            request("GET", "/bookings/alices", token),
            request("GET", "/healthz", ""),
            request("POST", "/events/e1/holds", token, b"{", key="ka-3"),
            request("GET", "/bookings/missing", token),
        )
        assert [r.status for r in pipelined] == [201, 200, 200, 422, 404]
        assert orjson.loads(pipelined[1].body)["hold_id"] == "alices"
        assert not any(r.closed for r in pipelined)
    finally:
        connection.close()


async def test_connection_close_is_honoured_below_asgi(pair: Pair) -> None:
    connection = await pair.connect(pair.hot)
    calls = pair.hot.app.calls
    try:
        raw = request("GET", "/bookings/alices", pair.token("alice"), extra="Connection: close")
        response = (await connection.send(raw))[0]
    finally:
        connection.close()
    assert response.status == 200
    assert response.header(b"connection") == b"close"
    assert response.closed
    assert pair.hot.app.calls == calls


async def test_http_1_0_goes_through_the_application(pair: Pair) -> None:
    connection = await pair.connect(pair.hot)
    calls = pair.hot.app.calls
    try:
        response = (await connection.send(request("GET", "/bookings/alices", pair.token("alice"), version="1.0")))[0]
    finally:
        connection.close()
    assert response.status == 200
    assert pair.hot.app.calls == calls + 1


async def test_an_error_in_the_hot_path_is_a_500_that_closes_the_connection(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    hot_routes = pair.hot.app.app.hot
    assert hot_routes is not None

    async def broken(request: Any, hold_id: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(hot_routes, "read_booking", broken)
    connection = await pair.connect(pair.hot)
    try:
        response = (await connection.send(request("GET", "/bookings/alices", pair.token("alice"))))[0]
    finally:
        connection.close()
    assert (response.status, response.body) == (500, b"Internal Server Error")
    assert response.closed
    monkeypatch.undo()
    after, _ = await pair.both(request("GET", "/bookings/alices", pair.token("alice")))
    assert after.status == 200, "the server goes on"
