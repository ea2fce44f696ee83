"""A hot request answered by the HTTP protocol itself, below uvicorn's ASGI cycle.

Why: the hot routes (api/hot_routes.py) already skip FastAPI's per-request machinery, but each
request still paid for uvicorn's: an ASGI scope and a `RequestResponseCycle` with its event, the
receive and send messages, each response header checked against two patterns, and the one-write
wrapper's callback (api/one_write.py). Measured against a bare protocol giving the same answers,
that was 35-50 us of CPU per request on this project's 2-core machine (BENCHMARKS.md), as much
as the rest of the API's own work on a booking read. A flash sale is almost nothing but these
requests.

The protocol (api/http_protocol.py) still parses every request with uvicorn's code, keeps its
connection handling (keep-alive, its timer, pipelining, flow control, the size limits, shutdown)
and only replaces the cycle of a request that is plainly hot: an admitted hot route with a verified
token, a declared body within the limit, HTTP/1.1, no upgrade, no `Expect`, no query string, the
connection idle. Anything else, and any request the hot path declines (`Edge.answer_hot` returning
None: not the plain case), goes through ASGI and the edge (api/edge.py) as before, which is what
holds every refusal to FastAPI's own answer.

`HotCycle` stands in uvicorn's `self.cycle` with the attributes uvicorn's protocol reads there
(`response_complete`, `disconnected`, `keep_alive`, `message_event`), so a lost connection or a
shutdown reaches it as it would reach a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from api.auth import Principal
from api.edge import content_length
from api.hot_routes import Answer, HotRoute


class NoEvent:
    """uvicorn's protocol sets its cycle's `message_event` when the connection is lost; nothing
    waits on a hot cycle's, so setting it does nothing."""

    __slots__ = ()

    def set(self) -> None:
        return None


NO_EVENT = NoEvent()


@dataclass(slots=True, eq=False)
class HotCycle:
    """One hot request, from its headers to its answer."""

    route: HotRoute
    principal: Principal
    method: str
    path: str
    scope: Any  # uvicorn's scope of this request, completed only if it goes through ASGI
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    body: bytearray = field(default_factory=bytearray)
    started: bool = False  # the answer's task is running
    response_complete: bool = False
    disconnected: bool = False
    message_event: NoEvent = NO_EVENT


def body_fits(method: str, headers: list[tuple[bytes, bytes]], limit: int) -> bool:
    """A hold's body is declared (not chunked) and within the limit; a read has none."""
    if any(name == b"transfer-encoding" for name, _ in headers):
        return False
    declared = content_length(headers)
    if method == "POST":
        return declared is not None and declared <= limit
    return declared is None or declared == 0


def plain_path(url: bytes) -> str | None:
    """The path of an origin-form URL with no query string and nothing escaped; None otherwise
    (those go through ASGI, whose scope has the decoded path and the query string)."""
    if not url.startswith(b"/") or b"?" in url or b"%" in url or b"#" in url:
        return None
    try:
        return url.decode("ascii")
    except UnicodeDecodeError:
        return None


def complete_scope(scope: dict[str, Any], method: str, path: str) -> None:
    """Fill in what uvicorn's `on_headers_complete` puts in a request's scope, for a hot request
    the hot path declined. A hot request's path is plain (`plain_path`), HTTP/1.1, under no root
    path, so its raw path is its path and its query string is empty."""
    scope["method"] = method
    scope["path"] = path
    scope["raw_path"] = path.encode("ascii")
    scope["query_string"] = b""


def response_bytes(answer: Answer, default_headers: list[tuple[bytes, bytes]], keep_alive: bool) -> bytes:
    """The whole response to a hot request, head and body, for one write: the status line,
    uvicorn's default headers (date, server), the answer's own, and `connection: close` when
    the connection ends with it."""
    parts = [STATUS_LINE[answer.status]]
    for name, value in default_headers:
        parts += (name, b": ", value, b"\r\n")
    parts += (b"content-type: ", answer.content_type, b"\r\ncontent-length: ", b"%d" % len(answer.body), b"\r\n")
    for name, value in answer.headers:
        parts += (name, b": ", value, b"\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts += (b"\r\n", answer.body)
    return b"".join(parts)
