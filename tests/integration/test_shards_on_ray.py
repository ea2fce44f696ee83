"""Shard actors on real Ray, PostgreSQL and Valkey: durable holds, no oversell, and a shard
killed mid-load loses nothing acknowledged and answers retries with the original answer."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import asyncpg
import pytest

from engine.domain import codec
from engine.domain.commands import CreateEvent, GetState, HoldTickets, TierSpec
from engine.domain.errors import InsufficientInventory, RezervError
from engine.domain.results import HoldGranted, StateView
from tests.dates import starts_in
from tests.integration.ray_helpers import shard_settings, shards

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]
transports = pytest.mark.parametrize("transport", ["stream", "ray"])  # REZERV_SHARD_TRANSPORT


def used_sockets(client: Any) -> list[bool]:
    """Per shard the client called: whether its batches went over the shard's socket."""
    return [channel.stream is not None for channel in client.channels if channel.calls]


async def held_in_store(database_url: str, stream: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT data FROM events WHERE stream_id = $1 AND event_type = 'TicketsHeld' ORDER BY version", stream
        )
    finally:
        await conn.close()
    events = [codec.decode_record(r["data"]) for r in rows]
    return {e.hold_id: e for e in events}


@transports
async def test_concurrent_holds_are_durable_and_never_oversold(
    database_url: str, redis_url: str, transport: str
) -> None:
    settings = shard_settings(database_url, redis_url, shard_count=2, shard_transport=transport)
    async with shards(settings) as (client, _):
        await client.execute(CreateEvent("hot", "Hot", "Hall", starts_in(30), (TierSpec("std", 100, 300),)))
        holds = [HoldTickets("hot", f"h{i}", f"c{i % 50}", (("std", 1 + i % 3),), 600_000) for i in range(400)]
        replies = await client.execute_many(holds)
        granted = {r.hold_id: r for r in replies if isinstance(r, HoldGranted)}
        refused = [r for r in replies if isinstance(r, InsufficientInventory)]
        assert len(granted) + len(refused) == len(holds)
        stored = await held_in_store(database_url, "event/hot")
        assert set(stored) == set(granted)
        assert sum(r.quantity for r in granted.values()) <= 300
        assert sum(r.quantity for r in granted.values()) >= 298  # refusals only once (nearly) sold out
        view = await client.execute_as(GetState("hot", "event"), StateView)
        assert view.state["tiers"][0]["held"] == sum(r.quantity for r in granted.values())
        assert client.stats()["avg_batch"] > 1
        assert set(used_sockets(client)) == {transport == "stream"}


@transports
async def test_killing_a_shard_mid_load_loses_nothing_acknowledged(
    database_url: str, redis_url: str, transport: str
) -> None:
    settings = shard_settings(database_url, redis_url, shard_count=1, batch_max=64, shard_transport=transport)
    async with shards(settings) as (client, handles):
        await client.execute(CreateEvent("k", "K", "Hall", starts_in(30), (TierSpec("std", 100, 1500),)))
        first_pid = (await handles[0].ping.remote())["pid"]
        holds = [HoldTickets("k", f"h{i}", "c", (("std", 1),), 600_000) for i in range(3000)]
        third = asyncio.Event()

        async def load() -> list[Any]:
            results: list[Any] = []
            for start in range(0, len(holds), 50):  # waves, so the kill lands mid-load
                results += await client.execute_many(holds[start : start + 50])
                if len(results) >= len(holds) // 3:
                    third.set()
            return results

        task = asyncio.create_task(load())
        await third.wait()
        socket_before = client.channels[0].stream
        os.kill(first_pid, signal.SIGKILL)
        replies = await task
        assert len(replies) == len(holds)
        assert await _pid_after_restart(handles[0]) != first_pid, "Ray should have restarted the shard"

        assert not [r for r in replies if isinstance(r, RezervError) and r.retryable], "retries must settle"
        granted = {r.hold_id: r for r in replies if isinstance(r, HoldGranted)}
        stored = await held_in_store(database_url, "event/k")
        assert set(stored) == set(granted), "every acknowledged hold is stored, and nothing else"
        for hold_id, reply in granted.items():  # the answer to a retry is the original one
            assert (reply.expires_at, reply.amount) == (stored[hold_id].expires_at, stored[hold_id].amount)
        assert len(granted) == 1500
        assert client.retries > 0, "the kill should have forced retries"
        if transport == "stream":
            assert socket_before is not None
            assert client.channels[0].stream is not None
            assert client.channels[0].stream is not socket_before, "the restarted shard's socket was opened"


async def _pid_after_restart(handle: Any) -> int:
    for _ in range(100):
        try:
            return int((await handle.ping.remote())["pid"])
        except Exception:
            await asyncio.sleep(0.1)
    raise AssertionError("the shard did not come back")
