"""The in-memory event store passes the EventStore and RecordArchive contracts."""

from __future__ import annotations

import pytest

from engine.adapters.memory_store import InMemoryEventStore
from tests.contract.event_store import EventStoreContract, InboxContract
from tests.contract.record_archive import RecordArchiveContract


class TestInMemoryEventStore(EventStoreContract, InboxContract, RecordArchiveContract):
    @pytest.fixture
    def store(self) -> InMemoryEventStore:
        return InMemoryEventStore()
