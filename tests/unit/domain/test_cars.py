"""Rental cars: half-open intervals, minimum days, discounts, maintenance blocks."""

from __future__ import annotations

from datetime import date

import pytest

from engine.domain.cars import Calendar, rental_price
from engine.domain.commands import BlockCar, CancelBooking, ConfirmBooking, ExpireHold, HoldCar, ReleaseHold, UnblockCar
from engine.domain.errors import BelowMinimumRental, IdempotencyConflict, IntervalUnavailable, InvalidCommand
from tests.unit.domain.builders import DAY0, T0, TTL, car_hold, rental_car


def test_touching_intervals_are_allowed_overlaps_are_not() -> None:
    car = rental_car()
    car.handle(car_hold("c1", "h1", 0, 3), T0)
    car.handle(car_hold("c1", "h2", 3, 5), T0)  # starts the day h1 ends
    car.handle(car_hold("c1", "h3", -2, 0), T0)  # ends the day h1 starts
    for start, end in [(2, 4), (0, 3), (-1, 1), (4, 6), (-5, 10), (1, 2)]:
        with pytest.raises(IntervalUnavailable):
            car.handle(car_hold("c1", f"x{start}{end}", start, end), T0)
    car.check_invariants()


def test_release_and_expiry_free_the_interval_confirm_keeps_it() -> None:
    car = rental_car()
    car.handle(car_hold("c1", "h1", 0, 3), T0)
    car.handle(ReleaseHold("c1", "car", "h1"), T0)
    car.handle(car_hold("c1", "h2", 0, 3), T0)
    car.handle(ExpireHold("c1", "car", "h2"), T0 + TTL)
    car.handle(car_hold("c1", "h3", 1, 2), T0)
    car.handle(ConfirmBooking("c1", "car", "h3"), T0)
    with pytest.raises(IntervalUnavailable):
        car.handle(car_hold("c1", "h4", 1, 2), T0)
    car.handle(CancelBooking("c1", "car", "h3"), T0)
    car.handle(car_hold("c1", "h4", 1, 2), T0)
    car.check_invariants()


def test_minimum_days_and_long_rental_discount() -> None:
    car = rental_car(rate=10_000, min_days=2, discount_from=7, discount=1_500)
    with pytest.raises(BelowMinimumRental):
        car.handle(car_hold("c1", "h1", 0, 1), T0)
    assert car.handle(car_hold("c1", "h2", 0, 2), T0).amount == 20_000
    assert car.handle(car_hold("c1", "h3", 10, 17), T0).amount == 7 * 8_500
    assert rental_price(6, 10_000, 7, 1_500) == 60_000
    assert rental_price(3, 100, 2, 500) == 0  # a discount never makes the rate negative


@pytest.mark.parametrize(("start", "end"), [(3, 3), (3, 1)])
def test_empty_or_reversed_intervals_are_invalid(start: int, end: int) -> None:
    with pytest.raises(InvalidCommand):
        rental_car().handle(car_hold("c1", "h1", start, end), T0)


def test_a_rental_cannot_start_in_the_past() -> None:
    car = rental_car()
    with pytest.raises(InvalidCommand, match="past"):
        car.handle(HoldCar("c1", "h1", "bob", date(2020, 1, 1), date(2020, 1, 3), TTL), T0)


def test_hold_retry_and_conflict() -> None:
    car = rental_car()
    first = car.handle(car_hold("c1", "h1", 0, 3), T0)
    assert car.handle(car_hold("c1", "h1", 0, 3), T0) == first
    with pytest.raises(IdempotencyConflict):
        car.handle(car_hold("c1", "h1", 0, 4), T0)


def test_maintenance_blocks_occupy_the_calendar() -> None:
    car = rental_car()
    day = DAY0
    car.handle(BlockCar("c1", "m1", day, date.fromordinal(day.toordinal() + 2), "service"), T0)
    with pytest.raises(IntervalUnavailable):
        car.handle(car_hold("c1", "h1", 1, 3), T0)
    car.handle(UnblockCar("c1", "m1"), T0)
    car.handle(car_hold("c1", "h1", 1, 3), T0)
    car.check_invariants()


def test_calendar_neighbours() -> None:
    cal = Calendar()
    cal.add(10, 20, "a")
    cal.add(30, 40, "b")
    assert cal.conflict(20, 30) is None
    assert cal.conflict(19, 21) == "a"
    assert cal.conflict(25, 31) == "b"
    assert cal.conflict(0, 100) == "a"
    cal.remove(10, "a")
    assert cal.conflict(0, 25) is None
    with pytest.raises(KeyError):
        cal.remove(30, "zzz")


def test_snapshot_round_trip() -> None:
    car = rental_car()
    car.handle(car_hold("c1", "h1", 0, 3), T0)
    car.handle(
        BlockCar("c1", "m1", date.fromordinal(DAY0.toordinal() + 5), date.fromordinal(DAY0.toordinal() + 6), "tyres"),
        T0,
    )
    again = type(car).from_state("c1", car.version, car.to_state())
    assert again.to_state() == car.to_state()
    again.check_invariants()
