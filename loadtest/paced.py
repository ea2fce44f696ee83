"""Paced users: each waits a think time, sends one GET, and times it (aiohttp on uvloop).

Why not Locust for latency at low rates: on this two-core machine Locust's own timing tail is
larger than the catalog's. Against `GET /healthz` (a no-op) at 64 users with 0.5-1.5 s of think
time, Locust reported a p99 of 16-46 ms on an idle stack (BENCHMARKS.md section 4), where this
generator reports 3-5 ms for the same route and load: gevent's greenlets, Locust's per-request
bookkeeping and its stats thread share one interpreter with the timing. Here each user is a
coroutine on uvloop doing nothing between requests but sleep, and a request is timed from just
before the GET to the last byte of its body read.

The users are closed-loop with think time (as Locust's `between`): the rate offered is about
users / (mean think time + latency), 64 users and 0.5-1.5 s giving about 63 requests/s.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtest.measure import percentile


@dataclass
class PacedResult:
    """What a paced run saw: one latency (seconds) per answered request, statuses, errors."""

    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_s)
        ms = {q: round(percentile(ordered, q) * 1000, 2) for q in (50, 95, 99)}
        return {
            "requests": len(ordered),
            "requests_per_s": round(len(ordered) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": ms[50],
            "p95_ms": ms[95],
            "p99_ms": ms[99],
            "max_ms": round(ordered[-1] * 1000, 2) if ordered else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
        }


async def run_paced(
    base_url: str,
    paths: Sequence[str],
    users: int,
    seconds: float,
    think_s: tuple[float, float] = (0.5, 1.5),
    seed: int = 1,
) -> PacedResult:
    """`users` users for `seconds`, each choosing its next path at random from `paths`.

    Users start spread over the first think time, as Locust's spawn spreads them, so they do not
    arrive in step. A request still running when the time is up is finished and counted."""
    import aiohttp

    if not paths:
        raise ValueError("no paths to request")
    if users < 1 or seconds <= 0:
        raise ValueError("users must be at least 1 and seconds positive")
    low, high = think_s
    result = PacedResult(seconds)
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:

        async def user(index: int) -> None:
            rng = random.Random(seed * 100_003 + index)
            await asyncio.sleep(rng.uniform(0, high))
            while time.monotonic() < deadline:
                path = rng.choice(paths)
                started = time.perf_counter()
                try:
                    async with session.get(path) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    name = type(exc).__name__
                    result.errors[name] = result.errors.get(name, 0) + 1
                else:
                    result.latencies_s.append(time.perf_counter() - started)
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                await asyncio.sleep(rng.uniform(low, high))

        await asyncio.gather(*(user(i) for i in range(users)))
    return result


def run(base_url: str, paths: Sequence[str], users: int, seconds: float, think_s: tuple[float, float]) -> PacedResult:
    """`run_paced` on a fresh uvloop event loop (the generator's own overhead kept small)."""
    import uvloop

    return uvloop.run(run_paced(base_url, paths, users, seconds, think_s))
