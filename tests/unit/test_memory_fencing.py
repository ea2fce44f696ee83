"""The in-memory fencing fake passes the Fencing contract."""

from __future__ import annotations

import pytest

from engine.adapters.memory_fencing import InMemoryFencing
from tests.contract.fencing import FencingContract


class TestInMemoryFencing(FencingContract):
    @pytest.fixture
    def fencing(self) -> InMemoryFencing:
        return InMemoryFencing()
