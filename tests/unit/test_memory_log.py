"""The in-memory log reader passes the LogReader contract, and its fault injection works."""

from __future__ import annotations

import pytest

from engine.adapters.memory_log import InMemoryLogReader
from engine.adapters.memory_store import InMemoryEventStore
from engine.domain.errors import StoreUnavailable
from engine.log import START, LogCheckpoint
from tests.contract.log_reader import LogReaderContract, append, sid


@pytest.fixture
def memory_store() -> InMemoryEventStore:
    return InMemoryEventStore()


class TestInMemoryLogReader(LogReaderContract):
    @pytest.fixture
    def store(self, memory_store: InMemoryEventStore) -> InMemoryEventStore:
        return memory_store

    @pytest.fixture
    def reader(self, memory_store: InMemoryEventStore) -> InMemoryLogReader:
        return InMemoryLogReader(memory_store)


async def test_injected_failures_fail_once_each_and_change_nothing(memory_store: InMemoryEventStore) -> None:
    reader = InMemoryLogReader(memory_store, fail_next_reads=1, fail_next_saves=1)
    await append(memory_store, {sid(): 2})
    with pytest.raises(StoreUnavailable):
        await reader.read_after(START, 10)
    assert len(await reader.read_after(START, 10)) == 2
    with pytest.raises(StoreUnavailable):
        await reader.save_checkpoint("r", LogCheckpoint(2, 2))
    assert await reader.load_checkpoint("r") == START
    await reader.save_checkpoint("r", LogCheckpoint(2, 2))
    assert await reader.load_checkpoint("r") == LogCheckpoint(2, 2)
