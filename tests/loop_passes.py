"""A task that counts its turns on the event loop: a test's way to see whether other work kept
running while the code under test ran (not a timing: a count that stays put when the loop is
held)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


@asynccontextmanager
async def counting_loop_turns(interval_s: float = 0.0) -> AsyncIterator[Callable[[], int]]:
    """Yields a function giving how many turns the counting task has had so far; the task asks
    for a turn every `interval_s` (0: at every pass of the loop) and is cancelled on exit."""
    turns = 0

    async def count() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(count())
    await asyncio.sleep(0)  # its first turn
    try:
        yield lambda: turns
    finally:
        task.cancel()
