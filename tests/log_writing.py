"""Writing the saga's messages into an event store's log, as the engine would have written their
events, for the tests of the log's consumers (engine/log_consumer.py)."""

from __future__ import annotations

from collections.abc import Sequence

from engine.outbox import OutboxMessage
from engine.ports import EventStore, NewEvent, StreamAppend


async def write(store: EventStore, messages: Sequence[OutboxMessage]) -> None:
    """Each message's event appended to its stream, one group commit each, in the order given.
    The store numbers the versions: a message id read back is the stream's own."""
    for m in messages:
        version = (await store.claim(m.stream_id, 1, "test")).version
        result = await store.append([StreamAppend(m.stream_id, version, 1, [NewEvent(m.event_type, m.payload)])])
        assert result.failed == frozenset()
