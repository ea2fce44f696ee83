"""`rezerv bench ray-calls` measures calls it really made: a caller's CPU divided by its calls."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import psutil

from loadtest.bench_ray_calls import Echo, Pattern, measure, table


class _InProcess:
    """The Echo actor called in this process, with the `.remote` of a Ray method."""

    def __init__(self) -> None:
        self.echo = Echo()
        self.calls = 0

    @property
    def call(self) -> Any:
        outer = self

        class _Method:
            async def remote(self, payload: bytes, delay_s: float) -> bytes:
                outer.calls += 1
                await asyncio.sleep(0)  # a call lets the other lanes run, as a real one does
                return await outer.echo.call(payload, delay_s)

        return _Method()


def test_each_pattern_counts_the_calls_made_and_their_cpu_per_call() -> None:
    actor = _InProcess()
    me = psutil.Process(os.getpid())
    # Back to back, so the process is busy for the whole 0.3 s: the kernel counts CPU time in
    # 10 ms ticks, and calls spaced out over 0.2 s could read as no CPU at all.
    started = time.perf_counter()
    cost = asyncio.run(measure(actor, me, Pattern("two lanes, back to back", 2, 0.0, 0.0), 0.3))
    took = time.perf_counter() - started
    assert actor.calls > 10
    # The rate is the calls made over the time measured: at most what the whole call took (a busy
    # test process can stretch it well past 0.3 s), and nearly the 0.3 s asked for at least (the
    # clock starts after the first CPU readings, which take a moment).
    assert actor.calls / took <= cost.calls_per_s <= actor.calls / 0.2
    assert cost.caller_us_per_call > 0
    assert cost.actor_us_per_call > 0  # here the "actor" is this process too
    assert "| two lanes, back to back |" in table([cost])
