"""The log-following loop's pacing: a follower with a minimum interval batches its work once caught
up, and never waits while it is behind."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable

from engine.following import Backoff, LogFollower


class _NoNotifications:
    async def listen(self, on_append: Callable[[], None]) -> None:
        raise OSError("no notifications here")


def follower(step: Callable[[], object], min_interval_s: float) -> LogFollower:
    return LogFollower(
        what="test follower",
        name="t",
        reader=_NoNotifications(),  # type: ignore[arg-type]
        step=step,  # type: ignore[arg-type]
        batch=10,
        log=logging.getLogger("test"),
        expected_failures=(),
        where=lambda: "start",
        poll_s=0.01,
        backoff=Backoff(0.01, 0.01),
        min_interval_s=min_interval_s,
    )


async def run_for(loop: LogFollower, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 2)


async def test_a_caught_up_follower_starts_a_batch_at_most_once_per_interval() -> None:
    starts: list[float] = []

    async def step() -> int:
        starts.append(time.monotonic())
        return 1  # fewer than the batch: caught up

    await run_for(follower(step, min_interval_s=0.2), 0.7)
    assert 2 <= len(starts) <= 5
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.19


async def test_a_follower_that_is_behind_does_not_pause() -> None:
    starts: list[float] = []

    async def step() -> int:
        starts.append(time.monotonic())
        await asyncio.sleep(0)
        return 10  # a full batch: more is waiting

    await run_for(follower(step, min_interval_s=0.2), 0.3)
    assert len(starts) > 20


async def test_without_an_interval_a_caught_up_follower_polls() -> None:
    starts: list[float] = []

    async def step() -> int:
        starts.append(time.monotonic())
        return 0

    await run_for(follower(step, min_interval_s=0.0), 0.3)
    assert len(starts) > 10
