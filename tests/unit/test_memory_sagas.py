"""The in-memory PendingSagas passes the PendingSagas contract."""

from __future__ import annotations

import pytest

from engine.adapters.memory_sagas import InMemoryPendingSagas
from engine.adapters.memory_store import InMemoryEventStore
from engine.domain import codec
from engine.ports import NewEvent, StreamAppend
from tests.contract.pending_sagas import Given, PendingSagasContract


async def append(store: InMemoryEventStore, stream: str, events: list[object]) -> None:
    version = (await store.claim(stream, 1, "test")).version
    encoded = [NewEvent(*codec.encode_named_record(e)) for e in events]
    assert (await store.append([StreamAppend(stream, version, 1, encoded)])).failed == frozenset()


class TestInMemoryPendingSagas(PendingSagasContract):
    @pytest.fixture
    def given(self) -> Given:
        async def build(*writes: tuple[str, list[object]]) -> InMemoryPendingSagas:
            store = InMemoryEventStore()
            for stream, events in writes:
                await append(store, stream, events)
            return InMemoryPendingSagas(store)

        return build
