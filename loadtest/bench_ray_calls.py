"""`rezerv bench ray-calls`: the CPU one Ray actor call costs, in the caller and in the actor.

Why: every command the API and the saga send a shard travels in a Ray call (actors/client.py
batches them), and at the loads of a flash sale with 16-64 users the calls are small and spaced
out. This measures the price of the hop alone: an async actor (as the shards are) that returns
the bytes it was sent, called by an asyncio caller (as the API is), one call in flight or four,
back to back or with the caller idle between calls. A call's CPU is the processes' CPU over the
run divided by the calls; the caller's own loop (a coroutine awaiting each call) is included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from loadtest.measure import cpu_seconds

PAYLOAD = b"x" * 600  # about a batch of a few holds, msgpack-encoded


@dataclass(frozen=True)
class Pattern:
    name: str
    in_flight: int  # calls out at once
    gap_s: float  # the caller idle between a call's answer and its next call
    delay_s: float  # the actor waits this long before answering (a commit, say)


PATTERNS = (
    Pattern("back to back, 1 in flight", 1, 0.0, 0.0),
    Pattern("back to back, 4 in flight", 4, 0.0, 0.0),
    Pattern("actor answers after 5 ms, 1 in flight", 1, 0.0, 0.005),
    Pattern("caller idle 5 ms between calls", 1, 0.005, 0.0),
    Pattern("caller idle 20 ms between calls", 1, 0.02, 0.0),
)


@dataclass(frozen=True)
class CallCost:
    pattern: str
    calls_per_s: float
    caller_percent: float  # of one core
    actor_percent: float
    caller_us_per_call: float
    actor_us_per_call: float


class Echo:
    """The actor: answers a call with its payload, after `delay_s`."""

    async def call(self, payload: bytes, delay_s: float) -> bytes:
        if delay_s:
            await asyncio.sleep(delay_s)
        return payload

    def pid(self) -> int:
        return os.getpid()


async def measure(actor: Any, actor_process: psutil.Process, pattern: Pattern, seconds: float) -> CallCost:
    caller = psutil.Process()
    calls = 0
    stop_at = time.perf_counter() + seconds

    async def lane() -> None:
        nonlocal calls
        while time.perf_counter() < stop_at:
            await actor.call.remote(PAYLOAD, pattern.delay_s)
            calls += 1
            if pattern.gap_s:
                await asyncio.sleep(pattern.gap_s)

    caller0, actor0, t0 = cpu_seconds(caller), cpu_seconds(actor_process), time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(pattern.in_flight)))
    elapsed = time.perf_counter() - t0
    caller_s, actor_s = cpu_seconds(caller) - caller0, cpu_seconds(actor_process) - actor0
    return CallCost(
        pattern.name,
        round(calls / elapsed, 1),
        round(100 * caller_s / elapsed, 1),
        round(100 * actor_s / elapsed, 1),
        round(caller_s / calls * 1e6),
        round(actor_s / calls * 1e6),
    )


async def run(seconds: float = 6.0) -> list[CallCost]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        actor: Any = ray.remote(Echo).remote()
        actor_process = psutil.Process(await actor.pid.remote())
        await measure(actor, actor_process, PATTERNS[0], 1.0)  # warm up
        return [await measure(actor, actor_process, pattern, seconds) for pattern in PATTERNS]
    finally:
        ray.shutdown()


def table(results: list[CallCost]) -> str:
    rows = [
        "| pattern | calls/s | caller, % of a core | actor, % of a core | caller us/call | actor us/call |",
        "|---|---|---|---|---|---|",
    ]
    rows += [
        f"| {r.pattern} | {r.calls_per_s:,.0f} | {r.caller_percent} | {r.actor_percent} | "
        f"{r.caller_us_per_call:,.0f} | {r.actor_us_per_call:,.0f} |"
        for r in results
    ]
    return "\n".join(rows)


def main(seconds: float, json_path: str) -> int:
    import uvloop

    results = uvloop.run(run(seconds))
    print(table(results))
    if json_path:
        with open(json_path, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=2)
    return 0
