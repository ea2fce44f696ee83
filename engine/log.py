"""Reading the whole event log in order, for the outbox relay and (later) the projections.

A reader follows the log from a checkpoint: it asks for the events after it, handles them, and
saves the (txid, position) of the last one. The log is ordered by (txid, position), not by
position alone, because group commits from several processes commit out of position order; the
PostgreSQL reader explains why that order never skips an event (engine/adapters/pg_log.py).

Pure: the dataclasses and the `LogReader` port, no I/O. Adapters: engine/adapters/pg_log.py and
the in-memory fake engine/adapters/memory_log.py, held to the same contract (tests/contract/).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, order=True)
class LogCheckpoint:
    """How far a reader has got: the (txid, position) of the last event it finished with.

    Ordered like the log, so `max` of two checkpoints is the further one."""

    txid: int
    position: int


START = LogCheckpoint(0, 0)
"""Before the first event: a reader with no saved checkpoint starts here."""


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as the log reader sees it: a stored event plus where it sits in the log."""

    stream_id: str
    version: int
    event_type: str
    data: bytes
    position: int
    txid: int
    recorded_at_ms: int

    @property
    def checkpoint(self) -> LogCheckpoint:
        """The checkpoint that says "finished with this event and every one before it"."""
        return LogCheckpoint(self.txid, self.position)


class LogSubscription(Protocol):
    """A live "the log grew" notification; closing it stops the callbacks."""

    def is_active(self) -> bool:
        """False once closed or once its connection is gone (then listen again, or just poll)."""

    async def close(self) -> None: ...


class LogReader(Protocol):
    async def read_after(self, checkpoint: LogCheckpoint, limit: int) -> list[LoggedEvent]:
        """Up to `limit` events after `checkpoint`, in log order, none of them still uncommitted.

        Reading again from the checkpoint of the last event returned never skips an event that
        commits later. Raises StoreUnavailable when the store cannot be reached."""

    async def load_checkpoint(self, name: str) -> LogCheckpoint:
        """The saved checkpoint of reader `name`, or START if it has none."""

    async def save_checkpoint(self, name: str, checkpoint: LogCheckpoint) -> None:
        """Save reader `name`'s checkpoint, unless the saved one is already further (never backwards)."""

    async def lag(self, checkpoint: LogCheckpoint, exact_up_to: int = 10_000) -> int:
        """Committed events after `checkpoint`: exact up to `exact_up_to`, an estimate above it."""

    async def listen(self, on_append: Callable[[], None]) -> LogSubscription:
        """Call `on_append` (no arguments, in the event loop) soon after events are appended.

        A wake-up hint only: it may come late, twice, or for an append a reader cannot read yet;
        readers still poll."""
