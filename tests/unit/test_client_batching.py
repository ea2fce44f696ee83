"""When the engine client sends a Ray call: one call out at a time unless a quarter of a batch waits.

A fake actor handle holds every call open until the test answers it, and records how many
commands each call carried; the wire format is the real one.
"""

from __future__ import annotations

import asyncio

import pytest

from actors.client import ShardChannel
from actors.wire import decode_batch, encode_replies
from engine.domain.commands import HoldTickets
from engine.domain.errors import InsufficientInventory


class _HeldCalls:
    """A stand-in for a shard's actor handle: `call.remote(payload)` returns a future the test resolves."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, asyncio.Future[bytes]]] = []
        self.call = self

    def remote(self, payload: bytes) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.calls.append((len(decode_batch(payload)), future))
        return future

    def sizes(self) -> list[int]:
        return [size for size, _ in self.calls]

    def answer(self, index: int) -> None:
        size, future = self.calls[index]
        future.set_result(encode_replies([InsufficientInventory("none left")] * size))


def _hold(n: int) -> HoldTickets:
    return HoldTickets("ev", f"h{n}", f"c{n}", (("std", 1),), 60_000)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def handle() -> _HeldCalls:
    return _HeldCalls()


async def test_a_few_commands_sent_while_a_call_is_out_wait_and_leave_together_in_the_next(
    handle: _HeldCalls,
) -> None:
    channel = ShardChannel(lambda _: handle, 0, batch_max=16, calls_in_flight=4)
    assert channel.overlap_min == 4, "a quarter of a batch by default"
    first = channel.submit(_hold(0))
    await _settle()
    later = [channel.submit(_hold(n)) for n in range(1, 4)]
    await _settle()
    assert handle.sizes() == [1], "three commands do not leave beside the call in flight"
    handle.answer(0)
    await _settle()
    assert handle.sizes() == [1, 3]
    handle.answer(1)
    replies = await asyncio.gather(first, *later)
    assert all(isinstance(r, InsufficientInventory) for r in replies)


async def test_a_quarter_batch_leaves_beside_the_call_in_flight_up_to_the_limit(handle: _HeldCalls) -> None:
    channel = ShardChannel(lambda _: handle, 0, batch_max=16, calls_in_flight=2)
    futures = [channel.submit(_hold(0))]
    await _settle()
    futures += [channel.submit(_hold(n)) for n in range(1, 5)]
    await _settle()
    assert handle.sizes() == [1, 4], "four commands join the call out"
    futures += [channel.submit(_hold(n)) for n in range(5, 24)]
    await _settle()
    assert handle.sizes() == [1, 4], "the limit of two calls keeps the rest waiting"
    handle.answer(0)
    await _settle()
    assert handle.sizes() == [1, 4, 16], "a freed slot takes a full batch"
    handle.answer(1)
    await _settle()
    assert handle.sizes() == [1, 4, 16], "the last three are less than a quarter: they wait for the call out"
    handle.answer(2)
    await _settle()
    assert handle.sizes() == [1, 4, 16, 3]
    handle.answer(3)
    assert len(await asyncio.gather(*futures)) == 24
