"""A response's head waits for its body and goes out in the same write (api/one_write.py)."""

from __future__ import annotations

import asyncio

from api.one_write import HeadHeldTransport


class RecordingTransport:
    """What a connection's transport was asked to do, in order."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "a write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def transport_on(loop: asyncio.AbstractEventLoop) -> tuple[HeadHeldTransport, RecordingTransport]:
    inner = RecordingTransport()
    return HeadHeldTransport(inner, loop), inner  # type: ignore[arg-type]


async def test_a_head_and_a_body_written_in_one_turn_leave_in_one_write() -> None:
    outer, inner = transport_on(asyncio.get_running_loop())
    outer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n")
    outer.write(b"{}")
    assert inner.writes == [b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}"]
    await asyncio.sleep(0)  # the fallback flush finds nothing held
    assert len(inner.writes) == 1


async def test_a_head_with_no_body_in_its_turn_leaves_at_the_next_turn() -> None:
    outer, inner = transport_on(asyncio.get_running_loop())
    outer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    assert inner.writes == []
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]


async def test_writes_after_the_head_go_out_as_they_come() -> None:
    outer, inner = transport_on(asyncio.get_running_loop())
    outer.write(b"head")
    outer.write(b"part 1")
    outer.write(b"part 2")
    await asyncio.sleep(0)
    outer.write(b"part 3")
    assert inner.writes == [b"headpart 1", b"part 2", b"part 3"]


async def test_a_close_sends_the_held_head_first() -> None:
    outer, inner = transport_on(asyncio.get_running_loop())
    outer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
    outer.close()
    assert inner.writes == [b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"]
    assert inner.closed
    await asyncio.sleep(0)  # the fallback flush does not write to the closed transport
    assert len(inner.writes) == 1


async def test_a_head_held_when_the_connection_closed_under_it_is_dropped() -> None:
    outer, inner = transport_on(asyncio.get_running_loop())
    outer.write(b"head")
    inner.close()  # the client went away
    await asyncio.sleep(0)
    assert inner.writes == []


async def test_everything_else_is_the_connection_s_own() -> None:
    outer, _ = transport_on(asyncio.get_running_loop())
    assert outer.get_extra_info("peername") == "info:peername"
    assert outer.is_closing() is False
