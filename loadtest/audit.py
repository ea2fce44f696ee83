"""The invariant auditor: what the callers were told, checked against the event store.

For every stream it rebuilds the entity from its events (the same code the shards run) and
checks the entity's invariants: no tier over its quantity or negative, no two active rental
intervals overlapping. Then it compares the holds in the store with the holds the callers saw
granted: every acknowledged hold must be stored with the same amount and quantity, and no hold
may be stored that nobody was told about.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.domain import codec
from engine.domain.entities import aggregate_class
from engine.domain.events import CarHeld, TicketsHeld
from engine.domain.results import HoldGranted
from engine.ports import RecordedEvent


@dataclass
class AuditReport:
    streams: int = 0
    stored_holds: int = 0
    acknowledged: int = 0
    missing: list[str] = field(default_factory=list)  # acknowledged, not stored
    unacknowledged: list[str] = field(default_factory=list)  # stored, never acknowledged
    mismatched: list[str] = field(default_factory=list)  # stored with another amount or quantity
    violations: list[str] = field(default_factory=list)  # oversold tiers, overlapping rentals
    tickets_sold: int = 0  # held or confirmed at the end, over all events
    capacity: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unacknowledged or self.mismatched or self.violations)

    def summary(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        return (
            f"audit {verdict}: {self.streams} streams, {self.stored_holds} holds stored, "
            f"{self.acknowledged} acknowledged, missing {len(self.missing)}, unacknowledged "
            f"{len(self.unacknowledged)}, mismatched {len(self.mismatched)}, invariant violations "
            f"{len(self.violations)}" + (f" ({self.violations[:3]})" if self.violations else "")
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "streams": self.streams,
            "stored_holds": self.stored_holds,
            "acknowledged": self.acknowledged,
            "missing": len(self.missing),
            "unacknowledged": len(self.unacknowledged),
            "mismatched": len(self.mismatched),
            "violations": self.violations[:10],
            "tickets_sold": self.tickets_sold,
            "capacity": self.capacity,
        }


class StreamLoader(Protocol):
    async def load(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]: ...


async def audit_streams(store: StreamLoader, streams: Iterable[str], granted: dict[str, HoldGranted]) -> AuditReport:
    """Replay `streams` from the store and compare with `granted` (hold id -> what the caller saw)."""
    report = AuditReport(acknowledged=len(granted))
    stored: dict[str, TicketsHeld | CarHeld] = {}
    for stream in sorted(set(streams)):
        cls, entity_id = aggregate_class(stream)
        agg = cls(entity_id)
        for recorded in await store.load(stream):
            event = codec.decode_record(recorded.data)
            agg.apply(event)
            if isinstance(event, TicketsHeld | CarHeld):
                if event.hold_id in stored:
                    report.violations.append(f"hold {event.hold_id} stored twice")
                stored[event.hold_id] = event
        report.streams += 1
        try:
            agg.check_invariants()  # type: ignore[attr-defined]
        except AssertionError as err:
            report.violations.append(f"{stream}: {err}")
        tiers = getattr(agg, "tiers", None)
        if tiers:
            report.tickets_sold += sum(t.held + t.confirmed for t in tiers.values())
            report.capacity += sum(t.quantity for t in tiers.values())
    report.stored_holds = len(stored)
    for hold_id, reply in granted.items():
        event = stored.get(hold_id)
        if event is None:
            report.missing.append(hold_id)
        elif event.amount != reply.amount or event.expires_at != reply.expires_at:
            report.mismatched.append(hold_id)
    report.unacknowledged = [h for h in stored if h not in granted]
    return report
