"""The faster __init__ keeps frozen dataclasses exactly as they were."""

from __future__ import annotations

import dataclasses

import pytest

from engine.domain.commands import ConfirmBooking, CreateEvent, HoldTickets, TierSpec
from engine.domain.fast_init import speed_up_init


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
