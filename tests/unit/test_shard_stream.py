"""A shard's direct channel (actors/shard_stream.py): batches and answers over a real Unix socket.

The server applies batches with a stand-in for ShardActor.call that the test controls, so the
order of answers, a traced answer, a caller without the secret and a dropped connection can each
be made to happen."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors.client import InventoryClient, ShardChannel
from actors.shard_stream import HELLO, StreamLink, StreamServer, frame, read_frame
from actors.wire import decode_batch, encode_replies
from engine.domain.commands import HoldTickets
from engine.domain.errors import InsufficientInventory, RezervError, ShardUnavailable
from engine.domain.results import Reply


class _Shard:
    """`apply(payload, traced)` as ShardActor.call: waits until the test releases that payload."""

    def __init__(self) -> None:
        self.gates: dict[bytes, asyncio.Event] = {}
        self.applied: list[bytes] = []

    def gate(self, payload: bytes) -> asyncio.Event:
        return self.gates.setdefault(payload, asyncio.Event())

    async def apply(self, payload: bytes, traced: bool) -> Any:
        await self.gate(payload).wait()
        self.applied.append(payload)
        answer = b"answer to " + payload
        return (answer, {"received_ns": 7}) if traced else answer


@pytest.fixture
async def served() -> AsyncIterator[tuple[_Shard, StreamServer]]:
    shard = _Shard()
    server = StreamServer(shard.apply)
    await server.start()
    yield shard, server
    await server.close()


@pytest.fixture
async def linked(served: tuple[_Shard, StreamServer]) -> AsyncIterator[tuple[_Shard, StreamServer, StreamLink]]:
    """`served`, and a caller's link to it opened with the shard's secret."""
    shard, server = served
    link = await StreamLink.open(server.path, server.secret)
    yield shard, server, link
    await link.close()


async def test_answers_come_back_to_their_own_callers_in_whatever_order_they_finish(
    linked: tuple[_Shard, StreamServer, StreamLink],
) -> None:
    shard, _server, link = linked
    first = asyncio.ensure_future(link.call(b"one"))
    second = asyncio.ensure_future(link.call(b"two"))
    shard.gate(b"two").set()
    assert await second == b"answer to two"
    assert not first.done(), "the first batch is still being applied"
    shard.gate(b"one").set()
    assert await first == b"answer to one"
    assert shard.applied == [b"two", b"one"]


async def test_a_traced_batch_comes_back_with_the_shards_stages(
    linked: tuple[_Shard, StreamServer, StreamLink],
) -> None:
    shard, _server, link = linked
    shard.gate(b"t").set()
    assert await link.call(b"t", True) == (b"answer to t", {"received_ns": 7})


async def test_a_connection_without_the_secret_is_closed_before_any_batch_is_applied(
    served: tuple[_Shard, StreamServer],
) -> None:
    shard, server = served
    shard.gate(b"x").set()
    wrong = await StreamLink.open(server.path, "not-the-secret")
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(wrong.call(b"x"), 5)
    reader, writer = await asyncio.open_unix_connection(server.path)
    writer.write(frame(1, 0, b"x"))  # no HELLO at all
    with pytest.raises(asyncio.IncompleteReadError):
        await asyncio.wait_for(read_frame(reader), 5)
    writer.close()
    assert shard.applied == []
    assert server.refused == 2


async def test_calls_waiting_on_a_dropped_connection_fail_and_the_link_stays_broken(
    linked: tuple[_Shard, StreamServer, StreamLink],
) -> None:
    _shard, server, link = linked
    waiting = asyncio.ensure_future(link.call(b"never answered"))
    await asyncio.sleep(0.05)
    await server.close()  # stops listening; the open connection goes with its handler below
    for task in list(server._tasks):
        task.cancel()
    link._writer.transport.abort()  # the shard's process died: the socket closes under the caller
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(waiting, 5)
    assert link.broken is not None
    with pytest.raises(ConnectionError):
        await link.call(b"after")


async def test_an_oversized_frame_header_closes_the_connection(served: tuple[_Shard, StreamServer]) -> None:
    shard, server = served
    reader, writer = await asyncio.open_unix_connection(server.path)
    writer.write(frame(0, HELLO, server.secret.encode()))
    writer.write(b"\xff\xff\xff\xff" + bytes(9))  # a length of 4 GiB
    with pytest.raises(asyncio.IncompleteReadError):
        await asyncio.wait_for(read_frame(reader), 5)
    writer.close()
    assert shard.applied == []


# ---- the engine client over the channel ---------------------------------------------------------
class _ShardHandle:
    """A stand-in for a shard's actor handle that offers its socket as ShardActor.channel does."""

    def __init__(self, server: StreamServer, node: str = "") -> None:
        self.channel = self
        self.call = _NoRay()
        self.server = server
        self.node = node

    async def remote(self) -> dict[str, str]:
        return {"node": self.node, "path": await self.server.start(), "secret": self.server.secret}


class _NoRay:
    def __init__(self) -> None:
        self.calls = 0

    async def remote(self, payload: bytes, *args: Any) -> bytes:
        self.calls += 1
        return encode_replies([InsufficientInventory("by Ray")] * len(decode_batch(payload)))


def _hold(n: int) -> HoldTickets:
    return HoldTickets("ev", f"h{n}", f"c{n}", (("std", 1),), 60_000)


async def _refuse_all(payload: bytes, traced: bool) -> bytes:
    return encode_replies([InsufficientInventory("by the socket")] * len(decode_batch(payload)))


def _said(reply: Reply) -> str:
    """Which way a refusal came (the stand-in shards refuse every command, naming their path)."""
    assert isinstance(reply, RezervError), reply
    return reply.message


async def test_the_engine_client_sends_batches_over_the_socket_of_a_shard_on_its_node() -> None:
    server = StreamServer(_refuse_all)
    handle = _ShardHandle(server)
    channel = ShardChannel(lambda _: handle, 0, batch_max=16, calls_in_flight=4, direct=True)
    replies = await asyncio.gather(*(channel.submit(_hold(n)) for n in range(5)))
    assert [_said(r) for r in replies] == ["by the socket"] * 5
    assert handle.call.calls == 0, "no Ray call"
    assert server.frames >= 1
    await server.close()


async def test_a_shard_on_another_node_is_called_over_ray() -> None:
    server = StreamServer(_refuse_all)
    handle = _ShardHandle(server, node="another-node")
    channel = ShardChannel(lambda _: handle, 0, batch_max=16, calls_in_flight=4, direct=True)
    reply = await channel.submit(_hold(0))
    assert _said(reply) == "by Ray"
    assert server.frames == 0
    await server.close()


async def test_after_the_socket_drops_the_next_batch_opens_it_again() -> None:
    server = StreamServer(_refuse_all)
    handle = _ShardHandle(server)
    channel = ShardChannel(lambda _: handle, 0, batch_max=16, calls_in_flight=4, direct=True)
    assert _said(await channel.submit(_hold(0))) == "by the socket"
    first = channel.stream
    assert first is not None
    first._writer.transport.abort()
    lost = await channel.submit(_hold(1))
    assert isinstance(lost, ShardUnavailable), "a batch on the dropped connection: may or may not have run"
    assert _said(await channel.submit(_hold(2))) == "by the socket"
    assert channel.stream is not None
    assert channel.stream is not first
    await server.close()


async def test_closing_the_client_ends_the_sockets_reader_and_a_later_batch_opens_it_again() -> None:
    server = StreamServer(_refuse_all)
    handle = _ShardHandle(server)
    client = InventoryClient(lambda _: handle, 1, batch_max=16, calls_in_flight=4, direct=True)
    assert _said(await client.submit(_hold(0))) == "by the socket"
    (channel,) = client.channels
    first = channel.stream
    assert first is not None
    await client.close()
    assert first._reading.done(), "no reader task is left pending for the event loop to destroy"
    assert channel.stream is None
    assert channel.transport == ""
    assert _said(await client.submit(_hold(1))) == "by the socket"
    assert channel.stream is not None
    assert channel.stream is not first
    await client.close()
    await server.close()


def test_the_socket_has_no_file_on_linux() -> None:
    from actors.shard_stream import socket_address

    address, directory = socket_address()
    if os.uname().sysname == "Linux":
        assert address.startswith("\0")
        assert directory == ""
    else:  # pragma: no cover
        assert os.path.isdir(directory)


def test_a_caller_on_uvloop_reaches_a_shard_listening_on_an_abstract_name() -> None:
    # The API runs on uvloop, whose open_unix_connection(path) refuses Linux's abstract names
    # (EINVAL): a link that used it fell back to Ray calls on every call without failing.
    import uvloop

    async def round_trip() -> Any:
        shard = _Shard()
        shard.gate(b"hold").set()
        server = StreamServer(shard.apply)
        path = await server.start()
        try:
            link = await StreamLink.open(path, server.secret)
            try:
                return path, await link.call(b"hold")
            finally:
                await link.close()
        finally:
            await server.close()

    path, answer = uvloop.run(round_trip())
    assert answer == b"answer to hold"
    if sys.platform.startswith("linux"):
        assert path.startswith("\0")  # the abstract namespace: nothing left behind by a killed shard
