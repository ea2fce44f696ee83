"""`rezerv up`'s readiness probe when the port answers with something other than HTTP/1."""

from __future__ import annotations

import socket
import threading

from stack.up import _get_json

# What a gRPC (HTTP/2) server sends first: a SETTINGS frame, before any HTTP/1 status line.
HTTP2_SETTINGS = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64"


def test_a_port_answered_by_a_server_that_is_not_http1_is_not_ready_rather_than_a_crash() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(HTTP2_SETTINGS)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        assert _get_json(f"http://127.0.0.1:{port}/readyz") == (0, {})
    finally:
        thread.join(5)
        server.close()
