"""The sales read model in memory: engine/sales.py's `apply`, for unit tests and the API's tests."""

from __future__ import annotations

from engine.sales import EntitySales, SalesBatch, apply


class InMemorySales:
    def __init__(self) -> None:
        self.sales: dict[str, EntitySales] = {}
        self.known: dict[str, tuple[str, int, int, int]] = {}

    async def apply(self, batch: SalesBatch) -> int:
        return len(apply(self.sales, batch, self.known))

    async def top(self, limit: int) -> list[EntitySales]:
        ranked = sorted(self.sales.values(), key=lambda s: (-s.revenue, -s.held_bookings, s.entity))
        return ranked[:limit]

    async def of(self, entity: str) -> EntitySales | None:
        return self.sales.get(entity)

    async def totals(self) -> EntitySales:
        total = EntitySales("*")
        for one in self.sales.values():
            total.merge(one)
        return total
