"""An in-memory PendingSagas over `InMemoryEventStore`, for unit tests of the saga supervisor.

The bookings read model is the pure fold of the store's log (engine/projections/bookings.py),
recomputed on every query, and each query is the SQL of engine/adapters/pg_bookings.py in
Python. It passes the same contract tests as engine/adapters/pg_sagas.py
(tests/contract/pending_sagas.py). Inbox rows get their age from `record_processed`: the
in-memory store keeps no times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.adapters.memory_store import InMemoryEventStore
from engine.domain.booking import HELD
from engine.domain.commands import FAILED, SUCCEEDED
from engine.log import LoggedEvent
from engine.ports import OverdueHold, UndecidedHold, UndeliveredDecision, Unrefunded
from engine.projections.bookings import Booking, fold, plan

_ENDED = ("RELEASED", "EXPIRED", "CANCELLED")


@dataclass
class InMemoryPendingSagas:
    store: InMemoryEventStore
    inbox_ages_s: dict[tuple[str, str], float] = field(default_factory=dict)
    purged: list[tuple[str, str]] = field(default_factory=list)

    def _logged(self) -> list[LoggedEvent]:
        return [
            LoggedEvent(e.stream_id, e.version, e.event_type, e.data, e.position, e.position, 0) for e in self.store.log
        ]

    def _bookings(self) -> list[Booking]:
        return list(fold(plan(self._logged())).values())

    async def undecided_holds(self, older_than_ms: int, limit: int) -> list[UndecidedHold]:
        rows = [b for b in self._bookings() if b.status == HELD.value and b.payment_status == "NONE"]
        rows = sorted((b for b in rows if b.held_at < older_than_ms), key=lambda b: (b.held_at, b.hold_id))
        return [UndecidedHold(b.hold_id, b.booking_stream, b.hold_version, b.held_at) for b in rows[:limit]]

    async def undelivered_decisions(self, older_than_ms: int, limit: int) -> list[UndeliveredDecision]:
        rows = [
            b
            for b in self._bookings()
            if b.status == HELD.value
            and b.payment_status in (SUCCEEDED, FAILED)
            and b.payment_decided_at is not None
            and b.payment_decided_at < older_than_ms
        ]
        rows.sort(key=lambda b: (b.payment_decided_at or 0, b.hold_id))
        return [
            UndeliveredDecision(
                b.hold_id,
                b.payment_status,
                b.payment_decided_at or 0,
                b.booking_stream,
                b.payment_reason,
            )
            for b in rows[:limit]
        ]

    async def unrefunded(self, older_than_ms: int, limit: int) -> list[Unrefunded]:
        found = []
        for b in self._bookings():
            ended = b.released_at or b.expired_at or b.cancelled_at
            if b.payment_status == SUCCEEDED and b.status in _ENDED and ended is not None and ended < older_than_ms:
                found.append((ended, b))
        found.sort(key=lambda pair: (pair[0], pair[1].hold_id))
        return [Unrefunded(b.hold_id, b.booking_stream, b.terminal_version or 0, b.status, at) for at, b in found][
            :limit
        ]

    async def overdue_holds(self, now_ms: int, grace_ms: int, limit: int) -> list[OverdueHold]:
        rows = [b for b in self._bookings() if b.status == HELD.value and b.expires_at < now_ms - grace_ms]
        rows.sort(key=lambda b: (b.expires_at, b.hold_id))
        return [OverdueHold(b.kind, b.entity_id, b.hold_id, b.expires_at) for b in rows[:limit]]

    async def events_at(self, keys: Sequence[tuple[str, int]]) -> list[LoggedEvent]:
        wanted = set(keys)
        return [e for e in self._logged() if (e.stream_id, e.version) in wanted]

    def record_processed(self, consumer: str, message_id: str, age_s: float) -> None:
        """An inbox row that is `age_s` old now."""
        self.inbox_ages_s[(consumer, message_id)] = age_s

    async def purge_inbox(self, older_than_s: float, limit: int) -> int:
        old = [key for key, age in self.inbox_ages_s.items() if age > older_than_s][:limit]
        for key in old:
            del self.inbox_ages_s[key]
            self.store.inbox.discard(key)
        self.purged.extend(old)
        return len(old)
