"""The sales read model in memory, for unit tests and the API's tests: the bookings projection's
rows folded in Python (engine/projections/bookings.py `fold`), and the counters moved as
engine/sales.py says: what the rows a batch touches contribute after it, less before it."""

from __future__ import annotations

from collections.abc import Sequence

from engine.projections.bookings import Booking, Change, fold, hold_of
from engine.sales import EntitySales


class InMemorySales:
    def __init__(self) -> None:
        self.sales: dict[str, EntitySales] = {}
        self.rows: dict[str, Booking] = {}

    async def apply(self, changes: Sequence[Change]) -> None:
        """A batch of the bookings projection's changes, as pg_bookings.apply_changes with sales."""
        touched = list(dict.fromkeys(hold_of(change) for change in changes))
        self._move(touched, -1)
        fold(changes, self.rows)
        self._move(touched, 1)

    def _move(self, hold_ids: list[str], sign: int) -> None:
        for hold_id in hold_ids:
            row = self.rows.get(hold_id)
            if row is not None:
                self.sales.setdefault(row.booking_stream, EntitySales(row.booking_stream)).add(row, sign)

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
