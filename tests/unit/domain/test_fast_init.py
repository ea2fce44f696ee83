"""The faster __init__ and replace keep frozen dataclasses exactly as they were."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from engine.domain.commands import ConfirmBooking, CreateEvent, HoldTickets, TierSpec
from engine.domain.fast_init import fast_replace, speed_up_init
from engine.projections.bookings import Booking


def test_registered_classes_use_the_fast_init_and_stay_frozen() -> None:
    assert HoldTickets.__init__.__qualname__ == "HoldTickets.__init__"
    hold = HoldTickets("e1", "h1", "alice", (("std", 2),), 1000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hold.hold_id = "other"  # type: ignore[misc]
    assert hold == HoldTickets(entity_id="e1", hold_id="h1", customer_id="alice", quantities=(("std", 2),), ttl_ms=1000)
    assert hash(hold) == hash(HoldTickets("e1", "h1", "alice", (("std", 2),), 1000))
    assert dataclasses.replace(hold, hold_id="h2").hold_id == "h2"


def test_defaults_and_inherited_fields() -> None:
    confirm = ConfirmBooking("e1", "event", "h1")
    assert (confirm.entity_id, confirm.booking_kind, confirm.hold_id, confirm.payment_ref) == ("e1", "event", "h1", "")
    create = CreateEvent("e1", "T", "V", "x", (TierSpec("a", 1, 1),))
    assert create.max_tickets_per_booking == 0
    with pytest.raises(TypeError):
        HoldTickets("e1", "h1")  # type: ignore[call-arg]


def test_classes_it_cannot_speed_up_are_left_alone() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithPostInit:
        x: int

        def __post_init__(self) -> None:
            object.__setattr__(self, "x", self.x * 2)

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    before = (WithPostInit.__init__, NoSlots.__init__)
    assert (speed_up_init(WithPostInit).__init__, speed_up_init(NoSlots).__init__) == before
    assert WithPostInit(2).x == 4


def _booking() -> Booking:
    return Booking("h1", "event", "e1", "event/e1", "alice", 100, 2, "HELD", 10, 5, 3, reason="why")


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"status": "CONFIRMED", "confirmed_at": 7, "terminal_version": 9},
        {"reason": None, "payment_status": "FAILED", "payment_reason": "no funds"},
        {"hold_id": "h2", "updated_at": None, "payment_stream": "wallet/alice"},
    ],
)
def test_fast_replace_gives_what_dataclasses_replace_gives(changes: dict[str, Any]) -> None:
    replace = fast_replace(Booking)
    row = _booking()
    copy = replace(row, **changes)
    expected = dataclasses.replace(row, **changes)
    assert copy == expected
    # field by field too: `updated_at` is left out of Booking's equality
    assert [getattr(copy, f.name) for f in dataclasses.fields(Booking)] == [
        getattr(expected, f.name) for f in dataclasses.fields(Booking)
    ]
    assert copy is not row
    assert row == _booking()
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.status = "other"  # type: ignore[misc]


def test_fast_replace_refuses_an_unknown_field_and_a_class_it_cannot_copy() -> None:
    with pytest.raises(TypeError):
        fast_replace(Booking)(_booking(), colour="red")

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class NotInInit:
        x: int
        y: int = dataclasses.field(init=False, default=0)

    with pytest.raises(ValueError, match="not a frozen, slotted dataclass"):
        fast_replace(NoSlots)
    with pytest.raises(ValueError, match="a field that __init__ does not set"):
        fast_replace(NotInInit)
