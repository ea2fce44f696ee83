"""The in-memory event store passes the EventStore contract."""

from __future__ import annotations

import pytest

from engine.adapters.memory_store import InMemoryEventStore
from tests.contract.event_store import EventStoreContract, InboxContract


class TestInMemoryEventStore(EventStoreContract, InboxContract):
    @pytest.fixture
    def store(self) -> InMemoryEventStore:
        return InMemoryEventStore()
