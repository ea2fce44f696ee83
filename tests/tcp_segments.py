"""How many TCP segments carrying data a client received for one HTTP exchange, as its kernel
counts them (TCP_INFO's tcpi_data_segs_in, Linux 4.6 and later)."""

from __future__ import annotations

import socket
import struct

_DATA_SEGS_IN = 152  # offset of tcpi_data_segs_in in Linux's struct tcp_info


def segments_of_one_response(host: str, port: int, request: bytes, ends_with: bytes) -> tuple[bytes, int]:
    """Send `request` on a new connection, read until the response ends with `ends_with`, and
    return (the response, how many segments with data the client received)."""
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while not reply.endswith(ends_with):
            chunk = sock.recv(65536)
            assert chunk, reply
            reply += chunk
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        (segments,) = struct.unpack_from("I", info, _DATA_SEGS_IN)
        return reply, segments
