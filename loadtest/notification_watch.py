"""Watching notifications arrive during a load test: Server-Sent Events streams of some customers.

`rezerv loadtest run --watch N` opens the live stream (`GET /customers/{id}/notifications/stream`)
of the population's first N customers from this process (aiohttp, so its CPU shows as the
load-test driver's) for the step's window, and measures for every notification the time from
its outcome (the event's own time, `at_ms`, stamped by the shard that confirmed or released the
booking) to its arrival here. Same machine, same clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from loadtest.measure import latency_summary
from loadtest.population import Population


@dataclass
class Watch:
    latencies_s: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    streams_opened: int = 0
    stream_errors: int = 0

    def summary(self) -> dict[str, object]:
        figures = latency_summary(self.latencies_s)
        return {
            "notifications": len(self.latencies_s),
            "p50_ms": round(figures["p50_ms"], 1),
            "p99_ms": round(figures["p99_ms"], 1),
            "max_ms": round(figures["max_ms"], 1),
            "outcomes": self.outcomes,
            "streams": self.streams_opened,
            "stream_errors": self.stream_errors,
        }


async def _one(session: aiohttp.ClientSession, base_url: str, customer: str, token: str, watch: Watch) -> None:
    url = f"{base_url}/customers/{customer}/notifications/stream"
    while True:
        try:
            async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                if response.status != 200:
                    watch.stream_errors += 1
                    await asyncio.sleep(1.0)
                    continue
                watch.streams_opened += 1
                async for raw in response.content:
                    line = raw.rstrip(b"\r\n")
                    if line.startswith(b"data:"):
                        event = orjson.loads(line[5:].strip())
                        watch.latencies_s.append(time.time() - event["at_ms"] / 1000)
                        outcome = str(event["outcome"])
                        watch.outcomes[outcome] = watch.outcomes.get(outcome, 0) + 1
        except (aiohttp.ClientError, TimeoutError, ValueError):
            watch.stream_errors += 1
            await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def watching(population: Population, count: int):  # type: ignore[no-untyped-def]
    """Streams of the first `count` customers while the block runs; yields the Watch."""
    watch = Watch()
    if count <= 0:
        yield watch
        return
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
    tasks = [
        asyncio.create_task(_one(session, population.base_url, c.customer_id, c.token, watch))
        for c in population.customers[:count]
    ]
    try:
        yield watch
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
