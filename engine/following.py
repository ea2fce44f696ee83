"""Following the event log: the loop shared by the outbox relay and the bookings projection.

A follower calls its `step` (one batch: read after the checkpoint, act, save the checkpoint) again
and again. It wakes on the store's append notification or every `poll_s`, whichever comes first;
re-subscribes to notifications when the listening connection is lost (polling covers the gap);
and rides out outages of the database or the broker with a backoff, logging each outage once
(and once more per new kind of error in it) rather than once per retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from engine.cancellation import as_failure
from engine.ports import LogReader, LogSubscription


class Backoff:
    """Delays for retrying through an outage: `first` doubling up to `cap`."""

    def __init__(self, first: float = 0.2, cap: float = 5.0) -> None:
        self.first = first
        self.cap = cap
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first


@dataclass
class _Outage:
    since: float
    retries: int = 0
    seen: set[type[Exception]] = field(default_factory=set)


@dataclass
class LogFollower:
    what: str  # "outbox relay", "bookings projection": how the logs name it
    name: str  # its checkpoint name
    reader: LogReader
    step: Callable[[], Awaitable[int]]  # one batch; returns the events handled
    batch: int
    log: logging.Logger
    expected_failures: tuple[type[Exception], ...]  # logged as a warning; anything else as an error
    where: Callable[[], object]  # where it is (the checkpoint), for the outage warning
    poll_s: float = 0.5
    backoff: Backoff = field(default_factory=Backoff)
    relisten_every_s: float = 5.0
    # Once caught up, at least this long from the start of one batch to the start of the next
    # (0: no pause; a follower that is behind never pauses). A follower whose cost is per batch
    # more than per event (a projection writing set-based statements, folding the changes a
    # booking made within one batch into one row) trades that much lag for fewer, larger batches.
    min_interval_s: float = 0.0
    _listen_at: float = float("-inf")
    _outage: _Outage | None = None

    async def run(self, stop: asyncio.Event) -> None:
        wake = asyncio.Event()
        subscription: LogSubscription | None = None
        try:
            while not stop.is_set():
                subscription = await self._keep_listening(subscription, wake)
                wake.clear()  # before reading: an append notified from now on wakes the next wait
                started = time.monotonic()
                try:
                    handled = await self.step()
                except (asyncio.CancelledError, Exception) as exc:
                    self._failed(as_failure(exc))
                    await wait_until(stop, None, self.backoff.next())
                    continue
                self._recovered()
                if handled < self.batch:  # caught up: wait for more, and at least the interval
                    pause = self.min_interval_s - (time.monotonic() - started)
                    if pause > 0:
                        await wait_until(stop, None, pause)
                    await wait_until(stop, wake, self.poll_s)
        finally:
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.close()

    async def _keep_listening(
        self, subscription: LogSubscription | None, wake: asyncio.Event
    ) -> LogSubscription | None:
        """(Re)subscribe to append notifications, at most every `relisten_every_s`; polling covers gaps."""
        if subscription is not None and subscription.is_active():
            return subscription
        if time.monotonic() - self._listen_at < self.relisten_every_s:
            return subscription
        self._listen_at = time.monotonic()
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.close()
        try:
            return await self.reader.listen(wake.set)
        except Exception as exc:
            self.log.debug("%s %s: no append notifications (%r); polling", self.what, self.name, exc)
            return None

    def _failed(self, exc: Exception) -> None:
        if self._outage is None:
            self._outage = _Outage(time.monotonic())
        outage = self._outage
        outage.retries += 1
        if type(exc) in outage.seen:
            self.log.debug("%s %s: still failing: %r", self.what, self.name, exc)
            return
        outage.seen.add(type(exc))
        if isinstance(exc, self.expected_failures):
            self.log.warning("%s %s: %s; retrying from %s with backoff", self.what, self.name, exc, self.where())
        else:
            self.log.error("%s %s: unexpected error; retrying with backoff", self.what, self.name, exc_info=exc)

    def _recovered(self) -> None:
        if self._outage is None:
            return
        self.log.info(
            "%s %s: recovered after %d failed attempts in %.1f s",
            self.what,
            self.name,
            self._outage.retries,
            time.monotonic() - self._outage.since,
        )
        self._outage = None
        self.backoff.reset()


async def wait_until(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Sleep up to `seconds`, returning early when `stop` (or `wake`) is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in ((stop,) if wake is None else (stop, wake))]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
