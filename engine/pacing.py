"""Background work that leaves the cores to the hot path: a step, then a rest as long as its share says.

A shard's background work (moving settled records to the archive, encoding a big snapshot in
pieces) already gives the event loop back between its steps, so no call waits long behind one
step. But passing the loop and straight back still keeps the process, and the PostgreSQL backend
it feeds, running flat out until the work is done: on a filled stack at 256 users the hot shard
archived 22,000-46,000 records in 1-3.5 s every ten seconds, and in those moments the API, the
load generator and the saga shared the two cores with it and its backend. The holds that started
then were most of the slowest 1% of the run (BENCHMARKS.md, part "2026-12-06"). Resting between
steps spreads the same work over a longer time at a lower intensity; the work and its result are
unchanged.

Pure: the clock and the sleep are given, so tests drive it without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Pacer:
    """After each step of a piece of background work, rest so the work runs at most `share` of
    the time: a step that took t seconds (wall time since the last rest, its awaits included) is
    followed by a rest of t * (1 - share) / share. `share` 1 rests for no time, one pass of the
    event loop, as a bare `asyncio.sleep(0)` does."""

    def __init__(
        self,
        share: float,
        now: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"a background share is more than 0 and at most 1, not {share!r}")
        self.share = share
        self._now = now
        self._sleep = sleep
        self._resumed = now()
        self.rested = 0.0  # seconds, all rests so far (for tests and diagnosis)

    async def rest(self) -> None:
        """Rest after a step; the next step's time counts from when this returns."""
        worked = max(0.0, self._now() - self._resumed)
        pause = worked * (1 - self.share) / self.share
        self.rested += pause
        await self._sleep(pause)
        self._resumed = self._now()
