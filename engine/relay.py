"""The outbox relay: publishes the event log to the bus, at least once, in log order.

The event store is the outbox: an event is in the log the moment it is durable, so there is no
second table to write and no event that is stored but never published. The relay follows the
log from its checkpoint (engine/log.py): read a batch, plan the messages (engine/outbox.py),
publish them and wait for every acknowledgement, then save the checkpoint of the batch's last
event. A crash between the publish and the save re-publishes at most that one batch: duplicates,
never gaps, and consumers remove duplicates by message id.

When the broker or the database fails, the checkpoint stays where it is and the same batch is
tried again with a backoff (0.2 s doubling to 5 s), logged once per outage rather than per retry.
The loop wakes on the store's append notification or every `poll_s`, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

from engine.domain.errors import StoreUnavailable
from engine.log import LogCheckpoint, LogReader, LogSubscription
from engine.outbox import RELAY_NAME, Publisher, PublishFailed, plan_batch

log = logging.getLogger("rezerv.relay")

LAG = Gauge(
    "rezerv_outbox_lag_events",
    "Committed events the outbox relay has not published yet (exact up to 10,000, an estimate above)",
)
PUBLISHED = Counter("rezerv_outbox_published_total", "Messages the outbox relay published and the broker acknowledged")

TRANSIENT = (StoreUnavailable, PublishFailed)


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


class OutboxRelay:
    def __init__(
        self,
        reader: LogReader,
        publisher: Publisher,
        name: str = RELAY_NAME,
        batch: int = 1000,
        poll_s: float = 0.5,
        backoff: Backoff | None = None,
        lag_every_s: float = 1.0,
        relisten_every_s: float = 5.0,
    ) -> None:
        self.reader = reader
        self.publisher = publisher
        self.name = name
        self.batch = batch
        self.poll_s = poll_s
        self.backoff = backoff or Backoff()
        self.lag_every_s = lag_every_s
        self.relisten_every_s = relisten_every_s
        self.checkpoint: LogCheckpoint | None = None  # the saved one, once loaded
        self.published = 0  # messages acknowledged by this instance
        self._lag_at = float("-inf")
        self._listen_at = float("-inf")
        self._outage: _Outage | None = None

    async def run_once(self) -> int:
        """One batch: read, publish, save the checkpoint. Returns the events handled (0 if none).

        Raises StoreUnavailable or PublishFailed, with the checkpoint where it was."""
        if self.checkpoint is None:
            self.checkpoint = await self.reader.load_checkpoint(self.name)
        events = await self.reader.read_after(self.checkpoint, self.batch)
        if events:
            messages = plan_batch(events)
            await self.publisher.publish_many(messages)
            self.published += len(messages)
            PUBLISHED.inc(len(messages))
            checkpoint = events[-1].checkpoint
            await self.reader.save_checkpoint(self.name, checkpoint)
            self.checkpoint = checkpoint
        # A batch shorter than the limit read everything visible: the lag is 0 as of that read, known
        # without counting. Otherwise the gauge is measured at most every `lag_every_s` (the count
        # scans up to 10,000 rows: under load it cost more database time than the appends).
        if len(events) < self.batch:
            LAG.set(0)
            self._lag_at = time.monotonic()
        elif time.monotonic() - self._lag_at >= self.lag_every_s:
            with contextlib.suppress(StoreUnavailable):  # a metric must not fail a published batch
                await self.refresh_lag()
        return len(events)

    async def refresh_lag(self) -> int:
        """Measure the events after the checkpoint and set the lag gauge to it."""
        if self.checkpoint is None:
            self.checkpoint = await self.reader.load_checkpoint(self.name)
        lag = await self.reader.lag(self.checkpoint)
        LAG.set(lag)
        self._lag_at = time.monotonic()
        return lag

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; survives broker and database outages (see the module docstring).

        `stop` is honoured between batches; a publish to an unreachable broker can take up to the
        publisher's timeout, so cancel the task to stop at once (at least once holds either way)."""
        wake = asyncio.Event()
        subscription: LogSubscription | None = None
        try:
            while not stop.is_set():
                subscription = await self._keep_listening(subscription, wake)
                wake.clear()  # before reading: an append notified from now on wakes the next wait
                try:
                    handled = await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._failed(exc)
                    await _wait(stop, None, self.backoff.next())
                    continue
                self._recovered()
                if handled < self.batch:
                    await _wait(stop, wake, self.poll_s)
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
            log.debug("outbox relay %s: no append notifications (%r); polling", self.name, exc)
            return None

    def _failed(self, exc: Exception) -> None:
        """Log an outage once (and once more per new kind of error in it), not every retry."""
        if self._outage is None:
            self._outage = _Outage(time.monotonic())
        outage = self._outage
        outage.retries += 1
        if type(exc) in outage.seen:
            log.debug("outbox relay %s: still failing: %r", self.name, exc)
            return
        outage.seen.add(type(exc))
        if isinstance(exc, TRANSIENT):
            log.warning("outbox relay %s: %s; retrying from %s with backoff", self.name, exc, self.checkpoint)
        else:
            log.error("outbox relay %s: unexpected error; retrying with backoff", self.name, exc_info=exc)

    def _recovered(self) -> None:
        if self._outage is None:
            return
        log.info(
            "outbox relay %s: recovered after %d failed attempts in %.1f s",
            self.name,
            self._outage.retries,
            time.monotonic() - self._outage.since,
        )
        self._outage = None
        self.backoff.reset()


@dataclass
class _Outage:
    since: float
    retries: int = 0
    seen: set[type[Exception]] = field(default_factory=set)


async def _wait(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Sleep up to `seconds`, returning early when `stop` (or `wake`) is set."""
    events = [stop] if wake is None else [stop, wake]
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
