"""uvicorn's httptools protocol with a limit on the size of a request's line and headers.

httptools (llhttp) accepts a header of any size and uvicorn keeps all of it in memory before the
application sees the request (a 20 MB header line was accepted). This protocol counts the bytes
of the request line and headers as the parser hands them over and answers 431 (Request Header
Fields Too Large) and closes the connection as soon as they pass REZERV_API_MAX_HEADER_BYTES,
before the rest is read. `rezerv up` starts uvicorn with ``--http api.http_protocol:LimitedHttpToolsProtocol``.

It also sends each response's head and body in one write (api/one_write.py).
"""

from __future__ import annotations

from functools import cache

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    _header_bytes = 0
    _too_large = False

    def on_headers_complete(self) -> None:
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
