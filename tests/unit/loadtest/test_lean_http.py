"""The load test's lean HTTP client against a real server on a real socket (a scripted one, in a
thread): what it sends, how it reads each kind of answer, when it reuses, replaces or gives up a
connection, and that the network's faults come back as status 0, never as exceptions."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from loadtest.scenarios.lean_http import LeanHttp, MalformedAnswer


@dataclass
class Request:
    connection: int
    head: str
    body: bytes

    @property
    def line(self) -> str:
        return self.head.split("\r\n", 1)[0]

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


# What the server does with a request: the bytes it answers (None: answer nothing) and whether it
# closes the connection after them.
Script = Callable[[Request], tuple[bytes | None, bool]]


@dataclass
class ScriptedServer:
    script: Script
    requests: list[Request] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                request = Request(number, head.decode("latin-1"), b"")
                size = int(request.header("Content-Length") or 0)
                while len(buffer) < size:
                    buffer += conn.recv(65536)
                request.body, buffer = buffer[:size], buffer[size:]
                self.requests.append(request)
                answer, close = self.script(request)
                if answer is not None:
                    conn.sendall(answer)
                if close:
                    return

    def close(self) -> None:
        self.listener.close()


def answer(status: str, body: bytes = b"", *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@contextmanager
def serve(script: Script) -> Iterator[ScriptedServer]:
    """A scripted server for the `with` block; its listener closed after it, even when it fails."""
    server = ScriptedServer(script)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def ok_server() -> Iterator[ScriptedServer]:
    with serve(lambda r: (answer("200 OK", b'{"ok": true}', "Retry-After: 3"), False)) as server:
        yield server


def test_a_json_post_reaches_the_server_with_its_headers_and_body_and_its_answer_is_read_whole() -> None:
    def created(request: Request) -> tuple[bytes, bool]:
        return answer("201 Created", b'{"hold_id": "h1", "amount": 7}', "X-Thing: Yes"), False

    with serve(created) as server:
        http = LeanHttp(server.url)
        got = http.request("POST", "/events/e1/holds", "POST /events/{id}/holds", {"Idempotency-Key": "k-1"}, {"n": 2})
        (sent,) = server.requests
        assert sent.line == "POST /events/e1/holds HTTP/1.1"
        assert sent.header("Host") == f"127.0.0.1:{server.port}"
        assert sent.header("Idempotency-Key") == "k-1"
        assert sent.header("Content-Type") == "application/json"
        assert json.loads(sent.body) == {"n": 2}
        assert int(sent.header("Content-Length") or -1) == len(sent.body)
        assert (got.status_code, got.headers["x-thing"], got.error) == (201, "Yes", None)
        assert got.json_object() == {"hold_id": "h1", "amount": 7}
        assert got.name == "POST /events/{id}/holds"
        assert got.response_time_ms > 0
        assert abs(got.start_time - time.time()) < 5


def test_a_body_that_is_not_a_json_object_reads_as_none_not_an_exception() -> None:
    bodies = iter([b"not json", b"[1, 2]", b'{"hold_id": "h"}'])
    with serve(lambda r: (answer("201 Created", next(bodies)), False)) as server:
        http = LeanHttp(server.url)
        assert [http.request("POST", "/h", "h", json={}).json_object() for _ in range(3)] == [
            None,
            None,
            {"hold_id": "h"},
        ]


def test_a_get_sends_no_body_and_no_content_length(ok_server: ScriptedServer) -> None:
    got = LeanHttp(ok_server.url).request("GET", "/bookings/h1", "GET /bookings/{id}", {"Authorization": "Bearer t"})
    (sent,) = ok_server.requests
    assert (sent.line, sent.header("Authorization"), sent.header("Content-Length"), sent.body) == (
        "GET /bookings/h1 HTTP/1.1",
        "Bearer t",
        None,
        b"",
    )
    assert (got.status_code, got.headers["retry-after"]) == (200, "3")


def test_a_users_requests_share_one_connection(ok_server: ScriptedServer) -> None:
    http = LeanHttp(ok_server.url)
    statuses = [http.request("GET", f"/r/{i}", "GET /r").status_code for i in range(5)]
    assert statuses == [200] * 5
    assert {r.connection for r in ok_server.requests} == {1}
    assert ok_server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_before_the_next_request() -> None:
    with serve(lambda r: (answer("200 OK", b"x"), True)) as server:  # closes without saying so
        http = LeanHttp(server.url)
        first = http.request("POST", "/a", "a", json={})
        time.sleep(0.05)  # the close reaches the client
        second = http.request("POST", "/b", "b", json={})
        assert (first.status_code, second.status_code) == (200, 200)
        assert [r.connection for r in server.requests] == [1, 2]


def test_an_answer_that_says_connection_close_is_followed_by_a_new_connection() -> None:
    with serve(lambda r: (answer("503 Service Unavailable", b"", "Connection: close"), True)) as server:
        http = LeanHttp(server.url)
        assert [http.request("GET", "/a", "a").status_code for _ in range(2)] == [503, 503]
        assert [r.connection for r in server.requests] == [1, 2]


def test_a_chunked_answer_is_joined_and_the_connection_kept() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked = head + b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    with serve(lambda r: (chunked, False)) as server:
        http = LeanHttp(server.url)
        assert [http.request("GET", "/c", "c").content for _ in range(2)] == [b"hello world"] * 2
        assert server.connections == 1


def test_an_answer_without_a_length_is_read_to_the_connections_close() -> None:
    with serve(lambda r: (b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nall of it", True)) as server:
        http = LeanHttp(server.url)
        got = http.request("GET", "/c", "c")
        assert (got.status_code, got.content) == (200, b"all of it")
        assert http.request("GET", "/c", "c").content == b"all of it"
        assert server.connections == 2


def test_an_interim_100_answer_is_skipped() -> None:
    both = b"HTTP/1.1 100 Continue\r\n\r\n" + answer("201 Created", b"{}")
    with serve(lambda r: (both, False)) as server:
        assert LeanHttp(server.url).request("POST", "/h", "h", json={}).status_code == 201


def test_no_server_listening_is_a_network_error_with_status_0() -> None:
    port = socket.create_server(("127.0.0.1", 0))
    address = port.getsockname()[1]
    port.close()
    got = LeanHttp(f"http://127.0.0.1:{address}").request("GET", "/x", "x")
    assert (got.status_code, type(got.error)) == (0, ConnectionRefusedError)


def test_a_server_that_does_not_answer_in_time_is_a_network_error_and_the_next_request_reconnects() -> None:
    silent_once = iter([True])

    def script(request: Request) -> tuple[bytes | None, bool]:
        return (None, False) if next(silent_once, False) else (answer("200 OK"), False)

    with serve(script) as server:
        http = LeanHttp(server.url, network_timeout=0.2)
        late = http.request("GET", "/slow", "slow")
        assert (late.status_code, isinstance(late.error, TimeoutError)) == (0, True)
        assert late.response_time_ms >= 150
        assert http.request("GET", "/fast", "fast").status_code == 200
        assert server.connections == 2


def test_bytes_that_are_not_http_are_a_network_error() -> None:
    with serve(lambda r: (b"SSH-2.0-nope\r\n\r\n", False)) as server:
        got = LeanHttp(server.url).request("GET", "/x", "x")
        assert (got.status_code, type(got.error)) == (0, MalformedAnswer)


def test_a_post_whose_reused_connection_breaks_before_its_answer_is_not_sent_again_but_a_get_is() -> None:
    # The server answers the first request of each connection and drops the second unanswered.
    def script(request: Request) -> tuple[bytes | None, bool]:
        seen = sum(1 for r in server.requests if r.connection == request.connection)
        return (answer("200 OK"), False) if seen == 1 else (None, True)

    with serve(script) as server:
        http = LeanHttp(server.url)
        assert http.request("POST", "/p", "p", json={}).status_code == 200
        dropped = http.request("POST", "/p", "p", json={})
        assert (dropped.status_code, [r.line for r in server.requests].count("POST /p HTTP/1.1")) == (0, 2)
        assert http.request("GET", "/g", "g").status_code == 200  # a new connection's first
        again = http.request("GET", "/g", "g")  # dropped on that connection, then sent on a new one
        assert again.status_code == 200
        assert [r.line for r in server.requests].count("GET /g HTTP/1.1") == 3


def test_what_cannot_be_sent_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="plain http"):
        LeanHttp("https://example.org")
    with pytest.raises(ValueError, match="path"):
        LeanHttp("http://127.0.0.1:1/api")
    http = LeanHttp("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="cannot be sent"):
        http.request("GET", "/x", "x", {"Authorization": "Bearer a\r\nX-Injected: 1"})
    with pytest.raises(ValueError, match="request path"):
        http.request("GET", "x y", "x")
    with pytest.raises(ValueError, match="request method"):
        http.request("GET /x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", "/x", "x")
