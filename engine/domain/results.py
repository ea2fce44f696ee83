"""What an entity answers to a command; sent back across Ray as msgpack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.domain.codec import register, upcaster
from engine.domain.errors import RezervError


@register()
@dataclass(frozen=True, slots=True)
class HoldGranted:
    """The answer to a hold, and to every retry of it (same key, same body): the same booking, with
    its status at the time of the answer (HELD for a new hold; a retry sees CONFIRMED, RELEASED,
    EXPIRED or CANCELLED once the booking has moved on)."""

    entity_id: str
    hold_id: str
    customer_id: str
    amount: int
    expires_at: int
    quantity: int  # tickets, or rental days
    status: str = "HELD"


@register(version=2)
@dataclass(frozen=True, slots=True)
class Done:
    """A command that changed state (or had already changed it: an idempotent repeat)."""

    entity_id: str
    ref: str  # the hold, block, change, deposit or saga id it concerned
    status: str  # e.g. the booking's status after the command
    amount: int = 0
    changed: bool = True  # False when the command repeated one already applied
    # Why, when the status alone does not say: a FAILED payment's reason, as the wallet decided
    # it (schema 2; the saga releases the booking with it instead of guessing the wallet's rule).
    reason: str = ""


@upcaster("Done", 1)
def _no_reason(fields: list[object]) -> list[object]:
    return [*fields, ""]


@register()
@dataclass(frozen=True, slots=True)
class StateView:
    """An entity's state as plain data (for GET requests and the auditor)."""

    stream_id: str
    version: int
    state: Any


Result = HoldGranted | Done | StateView
"""Every answer a command can succeed with."""

Reply = Result | RezervError
"""What crosses the engine's boundary for one command: a result, or the error it was refused
with (returned, never raised, so one refusal in a batch costs the others nothing)."""
