"""The outbox relay: publishes the event log to the bus, at least once, in log order.

The event store is the outbox: an event is in the log the moment it is durable, so there is no
second table to write and no event that is stored but never published. The relay follows the
log from its checkpoint (engine/log.py): read a batch, plan the messages (engine/outbox.py),
publish them (if any: a batch of unpublished types is no produce request) and wait for every
acknowledgement, then save the checkpoint of the batch's last event. A crash between the publish
and the save re-publishes at most that one batch: duplicates, never gaps, and consumers remove
duplicates by message id.

When the broker or the database fails, the checkpoint stays where it is and the same batch is
tried again with a backoff (0.2 s doubling to 5 s), logged once per outage rather than per retry.
The loop wakes on the store's append notification or every `poll_s`, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from prometheus_client import Counter, Gauge, Histogram

from engine import tracing
from engine.domain import codec
from engine.domain.errors import StoreUnavailable
from engine.following import Backoff, LogFollower
from engine.log import LogCheckpoint
from engine.outbox import RELAY_NAME, OutgoingMessage, PublishFailed, plan_batch
from engine.ports import LogReader, Publisher

log = logging.getLogger("rezerv.relay")

LAG = Gauge(
    "rezerv_outbox_lag_events",
    "Committed events the outbox relay has not published yet (exact up to 10,000, an estimate above)",
)
PUBLISHED = Counter("rezerv_outbox_published_total", "Messages the outbox relay published and the broker acknowledged")
PUBLISH_SECONDS = Histogram(
    "rezerv_outbox_publish_seconds",
    "Time to publish one batch of the log, from sending it until the broker acknowledged all of it",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

TRANSIENT = (StoreUnavailable, PublishFailed)


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
        min_interval_s: float = 0.0,
    ) -> None:
        """`min_interval_s`: once caught up, at least this long between batches (LogFollower):
        every publish is a produce request and a checkpoint write whatever its size, and every
        message batch it makes sets the saga's consumers going."""
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
        self.follower = LogFollower(
            "outbox relay",
            name,
            reader,
            self.run_once,
            batch,
            log,
            TRANSIENT,
            lambda: self.checkpoint,
            poll_s,
            self.backoff,
            relisten_every_s,
            min_interval_s,
        )

    async def run_once(self) -> int:
        """One batch: read, publish, save the checkpoint. Returns the events handled (0 if none).

        Raises StoreUnavailable or PublishFailed, with the checkpoint where it was."""
        if self.checkpoint is None:
            self.checkpoint = await self.reader.load_checkpoint(self.name)
        events = await self.reader.read_after(self.checkpoint, self.batch)
        if events:
            if messages := plan_batch(events):
                await self._publish(messages)
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

    async def _publish(self, messages: list[OutgoingMessage]) -> None:
        publishing = None
        if tracing.ENABLED:
            messages, publishing = _traced(messages)
        started = time.perf_counter()
        await self.publisher.publish_many(messages)
        PUBLISH_SECONDS.observe(time.perf_counter() - started)
        if publishing:
            tracing.published(publishing, time.time_ns())
        self.published += len(messages)
        PUBLISHED.inc(len(messages))

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
        await self.follower.run(stop)


def _traced(messages: list[OutgoingMessage]) -> tuple[list[OutgoingMessage], list[tracing.Publishing]]:
    """The batch with a `traceparent` header on the messages of sampled bookings (the key of a
    message is its booking's hold id), and their publish spans (engine/tracing.py)."""
    out: list[OutgoingMessage] = []
    publishing: list[tracing.Publishing] = []
    for message in messages:
        hold_id = message.key.decode("utf-8", "replace")
        traced = None
        if tracing.is_sampled(hold_id):
            value = codec.decode(message.value)
            traced = tracing.traced_headers(
                hold_id, value.event_type, message.topic, value.recorded_at_ms, message.headers
            )
        if traced is None:
            out.append(message)
            continue
        headers, span = traced
        out.append(message._replace(headers=headers))
        publishing.append(span)
    return out, publishing
