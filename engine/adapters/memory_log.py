"""An in-memory LogReader over `InMemoryEventStore.log`, for unit tests of log readers (the relay).

It passes the same contract tests as engine/adapters/pg_log.py (tests/contract/log_reader.py).
The in-memory store appends synchronously, so nothing is ever in flight: each event is its own
"transaction" (txid = position) and every appended event is readable at once. `listen` watches
the log's length, since the store has no hook to call. Fault injection (`fail_next_reads`,
`fail_next_saves`) lets unit tests drive a reader through a database outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from engine.adapters.memory_store import InMemoryEventStore
from engine.domain.errors import StoreUnavailable
from engine.log import START, LogCheckpoint, LoggedEvent
from engine.ports import Clock, RecordedEvent, SystemClock


@dataclass
class InMemoryLogReader:
    store: InMemoryEventStore
    clock: Clock = field(default_factory=SystemClock)
    checkpoints: dict[str, LogCheckpoint] = field(default_factory=dict)
    watch_interval_s: float = 0.005
    fail_next_reads: int = 0
    fail_next_saves: int = 0
    _recorded_at: dict[int, int] = field(default_factory=dict)

    def _logged(self, event: RecordedEvent) -> LoggedEvent:
        # The store keeps no time; the first time an event is seen stands in for its commit time.
        at = self._recorded_at.setdefault(event.position, self.clock.now_ms())
        e = event
        return LoggedEvent(e.stream_id, e.version, e.event_type, e.data, e.position, e.position, at)

    def _after(self, checkpoint: LogCheckpoint) -> list[RecordedEvent]:
        return [e for e in self.store.log if (e.position, e.position) > (checkpoint.txid, checkpoint.position)]

    async def read_after(self, checkpoint: LogCheckpoint, limit: int) -> list[LoggedEvent]:
        await asyncio.sleep(0)
        if self.fail_next_reads > 0:
            self.fail_next_reads -= 1
            raise StoreUnavailable("injected log read failure")
        return [self._logged(e) for e in self._after(checkpoint)[:limit]]

    async def read_matching(
        self, checkpoint: LogCheckpoint, limit: int, event_types: Collection[str]
    ) -> tuple[list[LoggedEvent], LogCheckpoint, int]:
        scanned = await self.read_after(checkpoint, limit)
        if not scanned:
            return [], checkpoint, 0
        return [e for e in scanned if e.event_type in event_types], scanned[-1].checkpoint, len(scanned)

    async def load_checkpoint(self, name: str) -> LogCheckpoint:
        await asyncio.sleep(0)
        return self.checkpoints.get(name, START)

    async def save_checkpoint(self, name: str, checkpoint: LogCheckpoint) -> None:
        await asyncio.sleep(0)
        if self.fail_next_saves > 0:
            self.fail_next_saves -= 1
            raise StoreUnavailable("injected checkpoint save failure")
        self.checkpoints[name] = max(self.checkpoints.get(name, START), checkpoint)

    async def lag(self, checkpoint: LogCheckpoint, exact_up_to: int = 10_000) -> int:
        await asyncio.sleep(0)
        return len(self._after(checkpoint))

    async def listen(self, on_append: Callable[[], None]) -> MemorySubscription:
        subscription = MemorySubscription(self.store, on_append, self.watch_interval_s)
        subscription.start()
        return subscription


class MemorySubscription:
    """Polls the log's length and calls back when it grew (what NOTIFY does for PostgreSQL)."""

    def __init__(self, store: InMemoryEventStore, on_append: Callable[[], None], interval_s: float) -> None:
        self._store = store
        self._on_append = on_append
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="memory-log-watch")

    async def _watch(self) -> None:
        seen = len(self._store.log)
        while True:
            await asyncio.sleep(self._interval_s)
            if len(self._store.log) > seen:
                seen = len(self._store.log)
                self._on_append()

    def is_active(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
