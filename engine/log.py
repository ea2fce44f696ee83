"""Reading the whole event log in order, for the outbox relay and (later) the projections.

A reader follows the log from a checkpoint: it asks for the events after it, handles them, and
saves the (txid, position) of the last one. The log is ordered by (txid, position), not by
position alone, because group commits from several processes commit out of position order; the
PostgreSQL reader explains why that order never skips an event (engine/adapters/pg_log.py).

Pure: the dataclasses, no I/O. The `LogReader` port is in engine/ports.py; its adapters are
engine/adapters/pg_log.py and the in-memory fake engine/adapters/memory_log.py, held to the same
contract (tests/contract/).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.fast_init import speed_up_init


@dataclass(frozen=True, slots=True, order=True)
class LogCheckpoint:
    """How far a reader has got: the (txid, position) of the last event it finished with.

    Ordered like the log, so `max` of two checkpoints is the further one."""

    txid: int
    position: int


START = LogCheckpoint(0, 0)
"""Before the first event: a reader with no saved checkpoint starts here."""


@speed_up_init  # a reader builds one per row it reads, six readers in the outbox service
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
