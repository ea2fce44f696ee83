"""A read model's consumer of the saga's messages, reading them from the event log, not the broker.

The notifier acts on the outcomes of the holds, in the shape of the messages the outbox relay
publishes (`OutboxMessage`), but on none of the broker's guarantees: it is exactly once by its
own state (a notification keyed by message id), and sends nothing on. So it reads them where the
relay reads, the log, by (txid, position) from a checkpoint of its own (engine/log.py), with
`read_matching`: the events of other types never leave the database. (The sales read model was
such a consumer too, until the bookings projection took over its counters: engine/sales.py.)

Why not the broker: as consumer groups of the topics, the notifier and the sales read model were
three of the broker's four groups; each fetched and decoded every message of its topic to keep one in two, and
the relay published every confirmation and refund for them alone (the payment worker skips both).
A log read is one statement per batch, and the batches are large (`min_interval_s`). What it
saved is measured in BENCHMARKS.md, part "2026-12-04, 09:05".

At least once, like a consumer group: the handler's effect is durable before the checkpoint is
saved, and a crash between the two hands the same messages over again, which the handler's own
state turns into no change. A consumer that is down only delays its read model: it resumes from
its checkpoint, and a new one starts at the start of the log (the notifier then skips outcomes
too old to be news: notifications.plan).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence

from prometheus_client import Counter

from engine.domain.errors import StoreUnavailable
from engine.following import Backoff, LogFollower
from engine.log import LogCheckpoint
from engine.outbox import OutboxMessage, outbox_message
from engine.ports import LogReader

log = logging.getLogger("rezerv.log_consumer")

HANDED = Counter(
    "rezerv_log_consumer_messages_total",
    "Messages a read model's log consumer handed to its handler (its batches that completed), by consumer",
    ["consumer"],
)

Handler = Callable[[Sequence[OutboxMessage]], Awaitable[None]]


class LogConsumer:
    """Hands the messages of `event_types` in the log after checkpoint `name` to `handler`, in
    log order, a batch of up to `batch` events scanned at a time; saves the checkpoint after the
    handler returned."""

    def __init__(
        self,
        name: str,
        reader: LogReader,
        handler: Handler,
        event_types: Collection[str],
        batch: int = 10_000,
        poll_s: float = 0.5,
        backoff: Backoff | None = None,
        min_interval_s: float = 0.0,
    ) -> None:
        """`min_interval_s`: once caught up, at least this long between batches (LogFollower)."""
        self.name = name
        self.reader = reader
        self.handler = handler
        self.event_types = frozenset(event_types)
        self.batch = batch
        self.checkpoint: LogCheckpoint | None = None  # the saved one, once loaded
        self.handed = 0  # messages whose batch completed in this instance
        self._handed_metric = HANDED.labels(name)
        self.follower = LogFollower(
            "log consumer",
            name,
            reader,
            self.run_once,
            batch,
            log,
            expected_failures=(StoreUnavailable,),
            where=lambda: self.checkpoint,
            poll_s=poll_s,
            backoff=backoff or Backoff(),
            min_interval_s=min_interval_s,
        )

    async def run_once(self) -> int:
        """One batch: read, hand over, save the checkpoint. Returns the events scanned (0 if none).

        Raises what the reader or the handler raised, with the checkpoint where it was."""
        if self.checkpoint is None:
            self.checkpoint = await self.reader.load_checkpoint(self.name)
        events, target, scanned = await self.reader.read_matching(self.checkpoint, self.batch, self.event_types)
        if not scanned:
            return 0
        if events:
            await self.handler([outbox_message(e) for e in events])
        await self.reader.save_checkpoint(self.name, target)
        self.checkpoint = target
        self.handed += len(events)
        self._handed_metric.inc(len(events))
        return scanned

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; survives database outages and failing handlers
        (engine/following.py), retrying the same batch with a backoff."""
        await self.follower.run(stop)
