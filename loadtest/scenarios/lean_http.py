"""The load test's HTTP client: one keep-alive HTTP/1.1 connection per Locust user, on gevent.

Why not Locust's `FastHttpUser`: the generator shares two cores with the system it measures, so
every microsecond it spends is taken from that system. geventhttpclient 2.6 builds each request
through case-insensitive header maps merged twice and checks every header with a regular
expression, and Locust wraps each request in a context dict and a response manager. Against a
server that does nothing, Locust with this client takes 0.36-0.39x the CPU per booking it took
with `FastHttpUser` (BENCHMARKS.md, part "2026-12-05, 22:02"). This client does what the
scenarios need and no more: a request head rendered in one string, head and body in one send, an
answer read by its Content-Length (or its chunks, or to the connection's close). It knows nothing
of Locust (loadtest/scenarios/common.py fires Locust's `request` event for each answer), so it is
tested without Locust's monkey-patching.

What it keeps of geventhttpclient on purpose, so figures stay comparable with every earlier run:
- Before each send, a pooled connection is checked with a `select` of timeout 0. Under gevent that
  is one pass through the hub, inside the timed request. The pass groups the users' sends (without
  it Locust took 10-31% more CPU per booking, BENCHMARKS.md, part "2026-12-05, 19:08"), and it
  has been part of every latency the suite reported.
- The timer starts after the body is encoded and stops when the whole answer is read.
- Nagle's algorithm is left on (head and body go in one send, so it delays nothing).

Errors: no HTTP answer (refused, reset, timed out, malformed) is an `Answer` with status 0 and the
exception in `error`, never raised: the scenarios count it and retry by their own policy. A GET on
a reused connection that breaks before any byte of its answer is sent once more on a new
connection (the server may have closed the idle connection just then); a POST is not, since it may
have been processed: the scenarios retry it with the same Idempotency-Key.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import gevent.select
import gevent.socket
import orjson

MAX_HEAD_BYTES = 64 * 1024
"""The most an answer's status line and headers may take; beyond it the answer is malformed."""
READ_BYTES = 64 * 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
NO_BODY_STATUSES = frozenset({204, 304})


class MalformedAnswer(ConnectionError):
    """The server's bytes are not an HTTP/1.x answer this client understands."""


class ClosedBeforeAnswer(ConnectionError):
    """The connection ended before any byte of the answer arrived."""


@dataclass(slots=True)
class Answer:
    """One request's outcome: the answer, or status 0 and the error that stood in its way."""

    method: str
    path: str
    name: str
    start_time: float  # epoch seconds, when the request began (Locust's `start_time`)
    response_time_ms: float = 0.0
    status_code: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    content: bytes = b""
    error: BaseException | None = None

    def json_object(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None when it is not one: a server's malformed answer is
        for the caller to count as a failure, not an exception that ends the user's task."""
        try:
            value = orjson.loads(self.content)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None


def _header_line(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
        raise ValueError(f"header {name!r} cannot be sent: {value!r}")
    return f"{name}: {value}\r\n"


class LeanHttp:
    """One user's connection to `base_url` (http://host[:port]), opened on first use and kept."""

    def __init__(self, base_url: str, network_timeout: float = 30.0, connection_timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the load test's client speaks plain http://host[:port], not {base_url!r}")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"the base URL must not have a path or a query: {base_url!r}")
        self.address = (parts.hostname, parts.port or 80)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self._host_line = f"Host: {host}:{parts.port}\r\n" if parts.port else f"Host: {host}\r\n"
        self.network_timeout = network_timeout
        self.connection_timeout = connection_timeout
        self._sock: socket.socket | None = None
        self._left = b""  # bytes read past the last answer (none with a well-behaved server)

    # ---- a request ------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        name: str,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> Answer:
        """Send one request and read its whole answer; never raises for the network's faults."""
        if not method.isalpha():
            raise ValueError(f"not a request method: {method!r}")
        if not path.startswith("/") or any(c in path for c in " \r\n"):
            raise ValueError(f"not a request path: {path!r}")
        body = b"" if json is None else orjson.dumps(json)
        lines = [f"{method} {path} HTTP/1.1\r\n", self._host_line]
        for key, value in (headers or {}).items():
            lines.append(_header_line(key, value))
        if json is not None:
            lines.append("Content-Type: application/json\r\n")
        if body or method not in IDEMPOTENT:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode("latin-1") + body
        answer = Answer(method, path, name, time.time())
        started = time.perf_counter()
        try:
            self._exchange(answer, data)
        except (OSError, MalformedAnswer) as exc:  # socket errors, timeouts, refusals, bad bytes
            self.close()
            answer.status_code, answer.headers, answer.content, answer.error = 0, {}, b"", exc
        answer.response_time_ms = (time.perf_counter() - started) * 1000
        return answer

    def _exchange(self, answer: Answer, data: bytes) -> None:
        reused = self._sock is not None and self._still_open(self._sock)
        if not reused:
            self._connect()
        try:
            self._send_and_read(answer, data)
        except ClosedBeforeAnswer:
            if not reused or answer.method not in IDEMPOTENT:
                raise
            self._connect()  # the server closed the idle connection as we sent: once more, new
            self._send_and_read(answer, data)

    def _send_and_read(self, answer: Answer, data: bytes) -> None:
        sock = self._sock
        assert sock is not None
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClosedBeforeAnswer(f"the connection broke while sending: {exc}") from exc
        self._read_answer(sock, answer)

    def _still_open(self, sock: socket.socket) -> bool:
        """An idle keep-alive connection has nothing to read; readable means closed (or garbage).
        Under gevent this `select` passes once through the hub (see the module's docstring)."""
        try:
            readable, _, _ = gevent.select.select([sock], [], [], 0.0)
        except (OSError, ValueError):
            readable = [sock]
        if readable:
            self.close()
            return False
        return True

    def _connect(self) -> None:
        self.close()
        sock = gevent.socket.create_connection(self.address, timeout=self.connection_timeout)
        sock.settimeout(self.network_timeout)
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock, self._left = None, b""

    # ---- reading an answer ----------------------------------------------------------------
    def _recv(self, sock: socket.socket) -> bytes:
        chunk = sock.recv(READ_BYTES)
        if not chunk:
            raise MalformedAnswer("the connection closed in the middle of an answer")
        return chunk

    def _read_answer(self, sock: socket.socket, answer: Answer) -> None:
        buffer, self._left = self._left, b""
        while True:  # interim 1xx answers are skipped
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise MalformedAnswer(f"an answer's head over {MAX_HEAD_BYTES} bytes")
                chunk = sock.recv(READ_BYTES)
                if not chunk:
                    if buffer:
                        raise MalformedAnswer("the connection closed in the middle of an answer's head")
                    raise ClosedBeforeAnswer("the connection closed before an answer")
                buffer += chunk
            status, version, headers = _parse_head(buffer[:end])
            buffer = buffer[end + 4 :]
            if not 100 <= status < 200 or status == 101:
                break
        answer.status_code, answer.headers = status, headers
        connection = headers.get("connection", "").lower()
        keep = connection != "close" and (version != "HTTP/1.0" or connection == "keep-alive")
        length = headers.get("content-length")
        if answer.method == "HEAD" or status in NO_BODY_STATUSES:
            content = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            content, buffer = self._read_chunked(sock, buffer)
        elif length is not None:
            if not length.isdigit():
                raise MalformedAnswer(f"Content-Length {length!r}")
            size = int(length)
            while len(buffer) < size:
                buffer += self._recv(sock)
            content, buffer = buffer[:size], buffer[size:]
        else:  # delimited by the connection's close
            parts = [buffer]
            while chunk := sock.recv(READ_BYTES):
                parts.append(chunk)
            content, buffer, keep = b"".join(parts), b"", False
        answer.content = content
        if keep:
            self._left = buffer
        else:
            self.close()

    def _read_chunked(self, sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
        parts: list[bytes] = []
        while True:
            while (eol := buffer.find(b"\r\n")) < 0:
                buffer += self._recv(sock)
            size_text = buffer[:eol].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise MalformedAnswer(f"a chunk's size {size_text!r}") from None
            buffer = buffer[eol + 2 :]
            if size == 0:  # the last chunk; then trailers (ignored) up to an empty line
                while (end := buffer.find(b"\r\n")) != 0:
                    if end < 0:
                        buffer += self._recv(sock)
                    else:
                        buffer = buffer[end + 2 :]
                return b"".join(parts), buffer[2:]
            while len(buffer) < size + 2:
                buffer += self._recv(sock)
            parts.append(buffer[:size])
            buffer = buffer[size + 2 :]


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    """(status, version, headers with lower-case names) of an answer's head, CRLFs between lines."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise MalformedAnswer(f"not an HTTP/1.x status line: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise MalformedAnswer(f"not a header line: {line!r}")
        headers[name.strip().lower()] = value.strip()
    return int(code), version, headers
