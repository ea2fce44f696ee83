"""The in-memory GenerationRegistry passes the registry contract."""

from __future__ import annotations

import pytest

from engine.adapters.memory_generations import InMemoryGenerationRegistry
from tests.contract.generations import GenerationRegistryContract


class TestInMemoryGenerationRegistry(GenerationRegistryContract):
    @pytest.fixture
    def registry(self) -> InMemoryGenerationRegistry:
        return InMemoryGenerationRegistry()
