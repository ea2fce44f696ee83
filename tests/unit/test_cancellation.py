"""A CancelledError from a future some library cancelled is not a request to stop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from engine.cancellation import StrayCancellation, as_failure, reraise_if_cancelled
from engine.following import Backoff, LogFollower


async def _await_then_classify(future: asyncio.Future[None]) -> object:
    try:
        await future
    except asyncio.CancelledError as exc:
        return reraise_if_cancelled(exc)
    return None


async def test_a_future_cancelled_by_someone_else_is_a_stray_cancellation() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_await_then_classify(future))
    await asyncio.sleep(0)
    future.cancel()  # what a library does to the requests of a connection that closed
    assert isinstance(await task, StrayCancellation)


async def test_cancelling_the_task_itself_still_cancels_it() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_await_then_classify(future))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class _NoNotifications:
    async def listen(self, callback: Any) -> Any:
        raise ConnectionError("no LISTEN here")


async def test_a_log_follower_survives_a_stray_cancellation_and_still_stops_when_cancelled() -> None:
    calls = 0
    stray: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    stray.cancel()

    async def step() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            await stray  # raises CancelledError, though nobody cancelled the follower
        return 0

    follower = LogFollower(
        what="test follower",
        name="t",
        reader=_NoNotifications(),  # type: ignore[arg-type]
        step=step,
        batch=10,
        log=logging.getLogger("test"),
        expected_failures=(StrayCancellation,),
        where=lambda: "start",
        poll_s=0.01,
        backoff=Backoff(0.01, 0.01),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    for _ in range(200):
        if calls >= 3:
            break
        await asyncio.sleep(0.01)
    assert calls >= 3, "the follower stopped after the stray cancellation"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_any_other_error_is_its_own_failure() -> None:
    error = ConnectionError("broker gone")
    assert as_failure(error) is error
