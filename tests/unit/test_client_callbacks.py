"""InventoryClient.request_then: the callback form of `request` (used by the benchmark's load generator).

The shards run in this process (tests/unit/local_shard.py): real wire format, host and
engine, no Ray. What must hold: every command gets exactly one final reply, refusals and results
arrive as values, transient failures are retried before the callback sees them, and a callback
that raises does not cost the other commands of its batch their answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from engine.domain.commands import CreateEvent, HoldTickets, TierSpec
from engine.domain.errors import InsufficientInventory, StoreUnavailable
from engine.domain.results import HoldGranted
from tests.dates import starts_in
from tests.unit.local_shard import LocalInventory, local_inventory


@asynccontextmanager
async def _event_on_local_shards(tickets: int, retry_for_s: float) -> AsyncIterator[LocalInventory]:
    """Local shards and a client whose transient failures are retried for `retry_for_s`, plus
    the event "cb" with one tier of `tickets`."""
    inventory = local_inventory(retry_for_s=retry_for_s)
    try:
        tiers = (TierSpec("std", 10, tickets),)
        await inventory.client.execute(CreateEvent("cb", "T", "V", starts_in(30), tiers))
        yield inventory
    finally:
        await inventory.stop()


def _hold(n: int, quantity: int = 1) -> HoldTickets:
    return HoldTickets("cb", f"cb-{n}", f"c{n}", (("std", quantity),), 60_000)


async def _replies(client: Any, commands: list[HoldTickets]) -> list[Any]:
    """Send every command with request_then and wait until each callback has run once."""
    loop = asyncio.get_running_loop()
    replies: list[list[Any]] = [[] for _ in commands]
    done = loop.create_future()
    left = [len(commands)]

    def answered(index: int, reply: Any) -> None:
        replies[index].append(reply)
        left[0] -= 1
        if left[0] == 0:
            done.set_result(None)

    for index, command in enumerate(commands):
        client.request_then(command, lambda reply, i=index: answered(i, reply))
    await asyncio.wait_for(done, 5)
    await asyncio.sleep(0.05)  # a second, wrong delivery would arrive by now
    assert all(len(r) == 1 for r in replies), "each callback runs exactly once"
    return [r[0] for r in replies]


async def test_callbacks_get_results_and_refusals_as_values() -> None:
    async with _event_on_local_shards(5, retry_for_s=1.0) as inventory:
        replies = await _replies(inventory.client, [_hold(n) for n in range(8)])
        granted = [r for r in replies if isinstance(r, HoldGranted)]
        refused = [r for r in replies if isinstance(r, InsufficientInventory)]
        assert len(granted) == 5  # 5 tickets, 8 attempts: nothing oversold
        assert len(refused) == 3
        assert {g.hold_id for g in granted} <= {f"cb-{n}" for n in range(8)}


async def test_transient_failures_are_retried_before_the_callback_runs() -> None:
    async with _event_on_local_shards(50, retry_for_s=2.0) as inventory:
        inventory.store.fail_next_appends = 2  # the next two group commits fail: a retryable error
        replies = await _replies(inventory.client, [_hold(n) for n in range(4)])
        assert all(isinstance(r, HoldGranted) for r in replies), replies
        assert inventory.client.retries >= 1


async def test_without_retry_time_the_transient_error_is_the_answer() -> None:
    async with _event_on_local_shards(50, retry_for_s=0.0) as inventory:
        inventory.store.fail_next_appends = 1
        [reply] = await _replies(inventory.client, [_hold(1)])
        assert isinstance(reply, StoreUnavailable)
        assert reply.retryable


async def test_a_raising_callback_does_not_cost_the_batch_its_answers() -> None:
    async with _event_on_local_shards(50, retry_for_s=1.0) as inventory:
        seen: list[Any] = []
        done = asyncio.get_running_loop().create_future()

        def bad(reply: Any) -> None:
            raise RuntimeError("a caller's bug")

        def good(reply: Any) -> None:
            seen.append(reply)
            if len(seen) == 3:
                done.set_result(None)

        inventory.client.request_then(_hold(1), good)
        inventory.client.request_then(_hold(2), bad)  # same tick, same shard: the same batch
        inventory.client.request_then(_hold(3), good)
        inventory.client.request_then(_hold(4), good)
        await asyncio.wait_for(done, 5)
        assert [r.hold_id for r in seen] == ["cb-1", "cb-3", "cb-4"]
