"""The API's HTTP protocol: uvicorn's httptools protocol with a limit on the size of a request's
line and headers, one write per response, and the hot requests answered below ASGI.

httptools (llhttp) accepts a header of any size and uvicorn keeps all of it in memory before the
application sees the request (a 20 MB header line was accepted). This protocol counts the bytes
of the request line and headers as the parser hands them over and answers 431 (Request Header
Fields Too Large) and closes the connection as soon as they pass REZERV_API_MAX_HEADER_BYTES,
before the rest is read. `rezerv up` starts uvicorn with ``--http api.http_protocol:LimitedHttpToolsProtocol``.

It also sends each response's head and body in one write (api/one_write.py), and answers a plainly
hot request itself, below ASGI (api/hot_cycle.py says why and when). Both lean on uvicorn's
protocol internals (its cycle's attributes, `on_response_complete`, the server's default headers),
so uvicorn is pinned in constraints.txt, and tests/integration/test_hot_protocol.py and
test_http_one_write.py hold them to its behaviour over real sockets.
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from api.edge import Edge
from api.hot_cycle import HotCycle, body_fits, complete_scope, plain_path, response_bytes
from api.hot_routes import Answer
from api.metrics import IN_FLIGHT
from api.one_write import HeadHeldTransport
from engine.config import Settings

_REASON = b"the request line and headers are over the size limit"
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_REASON)).encode() + b"\r\n"
    b"connection: close\r\n"
    b"\r\n" + _REASON
)


@cache
def header_limit() -> int:
    return Settings.from_env().api_max_header_bytes


class HeadersTooLarge(Exception):
    """Raised inside the parser's callback; httptools turns it into a parser error."""


def edge_of(app: Any) -> Edge | None:
    """The API's edge inside what uvicorn serves (its proxy-headers middleware wraps the app)."""
    for _ in range(8):
        if isinstance(app, Edge):
            return app
        app = getattr(app, "app", None)
    return None


INTERNAL_ERROR = Answer(500, b"Internal Server Error", b"text/plain; charset=utf-8")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    _header_bytes = 0
    _too_large = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.edge = edge_of(self.app)

    def on_headers_complete(self) -> None:
        hot = self._hot_cycle()
        if hot is not None:
            self.cycle = hot  # type: ignore[assignment]  # stands in for uvicorn's cycle (api/hot_cycle.py)
            return
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before:  # not an upgrade: a new request's cycle
            cycle.transport = HeadHeldTransport(self.transport, self.loop)  # type: ignore[assignment]

    def on_message_begin(self) -> None:
        self._header_bytes = 0
        super().on_message_begin()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > header_limit():
            self._too_large = True
            raise HeadersTooLarge

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        """The parser's errors all end here; the one this protocol raised gets its own status."""
        if not self._too_large:
            super().send_400_response(msg)
            return
        self.transport.write(TOO_LARGE)
        self.transport.close()

    # ---- a hot request answered here, below ASGI (api/hot_cycle.py) --------------------------
    def _hot_cycle(self) -> HotCycle | None:
        edge = self.edge
        if edge is None or edge.hot is None:
            return None
        current = self.cycle
        if current is not None and not current.response_complete:
            return None  # pipelined behind an unanswered request: uvicorn queues it
        parser = self.parser
        if (
            self.expect_100_continue
            or self.limit_concurrency is not None
            or self.config.access_log  # the hot path writes no access log (`rezerv up` runs without)
            or self.root_path
            or parser.should_upgrade()
            or parser.get_http_version() != "1.1"
        ):
            return None
        path = plain_path(self.url)
        if path is None:
            return None
        method = parser.get_method().decode("ascii")
        headers = self.headers
        if not body_fits(method, headers, edge.max_body):
            return None
        admitted = edge.admit_hot(method, path, headers)
        if admitted is None:
            return None
        route, principal = admitted
        return HotCycle(route, principal, method, path, self.scope, headers, parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if isinstance(cycle, HotCycle):
            cycle.body += body  # at most the declared length, which is within the limit
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if isinstance(cycle, HotCycle):
            if not cycle.started:
                cycle.started = True
                task = self.loop.create_task(self._answer(cycle))
                task.add_done_callback(self.tasks.discard)
                self.tasks.add(task)
            return
        super().on_message_complete()

    async def _answer(self, cycle: HotCycle) -> None:
        edge = self.edge
        assert edge is not None
        IN_FLIGHT.inc()
        try:
            answer = await edge.answer_hot(
                cycle.route, cycle.method, cycle.path, cycle.headers, cycle.principal, bytes(cycle.body)
            )
        except Exception as exc:
            self.logger.error("Exception in the hot path", exc_info=exc)
            cycle.keep_alive = False
            answer = INTERNAL_ERROR
        finally:
            IN_FLIGHT.dec()
        if answer is None:
            await self._through_asgi(cycle)
            return
        if self.flow.write_paused and not cycle.disconnected:
            await self.flow.drain()
        if cycle.disconnected:
            return
        self.transport.write(response_bytes(answer, self.server_state.default_headers, cycle.keep_alive))
        cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()

    async def _through_asgi(self, hot: HotCycle) -> None:
        """A hot request the hot path declined: answered by the whole application, as uvicorn
        would have, from the body already read."""
        complete_scope(hot.scope, hot.method, hot.path)
        cycle = RequestResponseCycle(
            scope=hot.scope,
            transport=HeadHeldTransport(self.transport, self.loop),  # type: ignore[arg-type]
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=hot.keep_alive,
            on_response=self.on_response_complete,
        )
        cycle.body = hot.body
        cycle.more_body = False
        cycle.disconnected = hot.disconnected
        cycle.message_event.set()
        if cast(object, self.cycle) is hot:
            self.cycle = cycle
        await cycle.run_asgi(self.app)
