"""The booking state machine, exhaustively."""

from __future__ import annotations

import itertools

import pytest

from engine.domain.booking import ALLOWED, BookingStatus, check_transition
from engine.domain.errors import InvalidTransition

LEGAL = {("HELD", "CONFIRMED"), ("HELD", "RELEASED"), ("HELD", "EXPIRED"), ("CONFIRMED", "CANCELLED")}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(BookingStatus, BookingStatus)))
def test_every_pair(current: BookingStatus, target: BookingStatus) -> None:
    if current is target:
        assert check_transition("h", current, target) is False
    elif (current.value, target.value) in LEGAL:
        assert check_transition("h", current, target) is True
    else:
        with pytest.raises(InvalidTransition):
            check_transition("h", current, target)


def test_table_matches_the_documented_machine() -> None:
    assert {(a.value, b.value) for a, targets in ALLOWED.items() for b in targets} == LEGAL
