"""The GenerationRegistry contract: one suite, run against the in-memory registry (tests/unit)
and PostgreSQL (tests/integration). A subclass provides the `registry` fixture, empty."""

from __future__ import annotations

from engine.ports import GenerationRegistry

T = 1_800_000_000_000


class GenerationRegistryContract:
    async def test_a_generation_is_retirable_once_every_live_consumer_drained_it(
        self, registry: GenerationRegistry
    ) -> None:
        await registry.heartbeat("pay", "bookings", T)
        await registry.heartbeat("notify", "bookings", T)
        await registry.mark_drained("pay", "bookings", 7)
        assert await registry.retirable("bookings", [6, 7, 8], T - 1000) == []
        await registry.mark_drained("notify", "bookings", 7)
        await registry.mark_drained("notify", "bookings", 7)  # idempotent
        assert await registry.retirable("bookings", [6, 7, 8], T - 1000) == [7]
        assert await registry.drained("pay", "bookings") == {7}

    async def test_topics_are_independent(self, registry: GenerationRegistry) -> None:
        await registry.heartbeat("pay", "bookings", T)
        await registry.heartbeat("results", "payments", T)
        await registry.mark_drained("pay", "bookings", 3)
        assert await registry.retirable("bookings", [3], T) == [3]
        assert await registry.retirable("payments", [3], T) == []

    async def test_a_consumer_not_seen_lately_does_not_hold_generations_back(
        self, registry: GenerationRegistry
    ) -> None:
        await registry.heartbeat("gone", "bookings", T - 3_600_000)
        await registry.heartbeat("pay", "bookings", T)
        await registry.mark_drained("pay", "bookings", 5)
        assert await registry.retirable("bookings", [5], T - 600_000) == [5]
        assert await registry.retirable("bookings", [5], T - 7_200_000) == [], "the old one counts if alive since then"

    async def test_nothing_is_retirable_while_no_consumer_is_known(self, registry: GenerationRegistry) -> None:
        assert await registry.retirable("bookings", [1, 2], T) == []
        await registry.heartbeat("pay", "bookings", T - 5_000_000)
        assert await registry.retirable("bookings", [1, 2], T) == []

    async def test_forgetting_a_generation_drops_its_records_only(self, registry: GenerationRegistry) -> None:
        await registry.heartbeat("pay", "bookings", T)
        for generation in (1, 2):
            await registry.mark_drained("pay", "bookings", generation)
        await registry.mark_drained("pay", "payments", 1)
        await registry.forget("bookings", [1])
        assert await registry.drained("pay", "bookings") == {2}
        assert await registry.drained("pay", "payments") == {1}

    async def test_a_heartbeat_never_moves_back(self, registry: GenerationRegistry) -> None:
        await registry.heartbeat("pay", "bookings", T)
        await registry.heartbeat("pay", "bookings", T - 10_000_000)
        await registry.mark_drained("pay", "bookings", 1)
        assert await registry.retirable("bookings", [1], T - 1) == [1]
