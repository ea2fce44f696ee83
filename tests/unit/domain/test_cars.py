"""Rental cars: half-open intervals, minimum days, discounts, maintenance blocks."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from engine.domain import codec
from engine.domain.aggregate import DAY_MS, MAX_HORIZON_DAYS
from engine.domain.cars import Calendar, RentalCar, day_of, rental_price, start_of_day_ms
from engine.domain.commands import (
    BlockCar,
    CancelBooking,
    ConfirmBooking,
    ExpireHold,
    HoldCar,
    RegisterCar,
    ReleaseHold,
    UnblockCar,
)
from engine.domain.errors import (
    AlreadyExists,
    BelowMinimumRental,
    CancellationClosed,
    DateBeyondHorizon,
    DateInThePast,
    IdempotencyConflict,
    IntervalUnavailable,
    InvalidCommand,
)
from engine.domain.events import BookingCancelled
from tests.unit.domain.builders import DAY0, HOUR, T0, TTL, car_hold, expect_done, expect_granted, rental_car


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
    assert expect_granted(car.handle(car_hold("c1", "h2", 0, 2), T0)).amount == 20_000
    assert expect_granted(car.handle(car_hold("c1", "h3", 10, 17), T0)).amount == 7 * 8_500
    assert rental_price(6, 10_000, 7, 1_500) == 60_000
    assert rental_price(3, 100, 2, 500) == 0  # a discount never makes the rate negative


@pytest.mark.parametrize(("start", "end"), [(3, 3), (3, 1)])
def test_empty_or_reversed_intervals_are_invalid(start: int, end: int) -> None:
    with pytest.raises(InvalidCommand):
        rental_car().handle(car_hold("c1", "h1", start, end), T0)


def test_a_rental_cannot_start_in_the_past() -> None:
    car = rental_car()
    with pytest.raises(DateInThePast, match="past"):
        car.handle(HoldCar("c1", "h1", "bob", date(2020, 1, 1), date(2020, 1, 3), TTL), T0)
    today = day_of(T0)
    car.handle(HoldCar("c1", "h2", "bob", today, date.fromordinal(today.toordinal() + 1), TTL), T0)


def test_a_rental_must_end_within_the_horizon() -> None:
    car = rental_car()
    last = date.fromordinal(day_of(T0).toordinal() + MAX_HORIZON_DAYS)
    car.handle(HoldCar("c1", "h1", "bob", date.fromordinal(last.toordinal() - 2), last, TTL), T0)
    beyond = date.fromordinal(last.toordinal() + 1)
    with pytest.raises(DateBeyondHorizon):
        car.handle(HoldCar("c1", "h2", "bob", last, beyond, TTL), T0)
    with pytest.raises(DateBeyondHorizon):
        car.handle(HoldCar("c1", "h3", "bob", date(9999, 1, 1), date(9999, 1, 3), TTL), T0)


def test_hold_retry_and_conflict() -> None:
    car = rental_car()
    first = car.handle(car_hold("c1", "h1", 0, 3), T0)
    assert car.handle(car_hold("c1", "h1", 0, 3), T0) == first
    with pytest.raises(IdempotencyConflict):
        car.handle(car_hold("c1", "h1", 0, 4), T0)


@pytest.mark.parametrize(
    ("end", "status"),
    [
        (ConfirmBooking("c1", "car", "h1"), "CONFIRMED"),
        (ReleaseHold("c1", "car", "h1"), "RELEASED"),
        (ExpireHold("c1", "car", "h1"), "EXPIRED"),
    ],
)
def test_a_retried_car_hold_answers_the_bookings_current_status(end: object, status: str) -> None:
    car = rental_car()
    first = expect_granted(car.handle(car_hold("c1", "h1", 0, 3), T0))
    assert first.status == "HELD"
    car.handle(end, T0 + TTL)  # type: ignore[arg-type]
    again = expect_granted(car.handle(car_hold("c1", "h1", 0, 3), T0 + TTL))
    assert again.status == status
    assert again == replace(first, status=status)


def test_a_confirmed_rental_can_be_cancelled_until_the_cutoff_before_its_first_day() -> None:
    car = rental_car(cancel_cutoff_ms=48 * HOUR)
    for hold_id, start in (("a", 0), ("b", 5)):
        car.handle(car_hold("c1", hold_id, start, start + 2), T0)
        car.handle(ConfirmBooking("c1", "car", hold_id), T0)
    deadline = start_of_day_ms(DAY0) - 48 * HOUR
    with pytest.raises(CancellationClosed):
        car.handle(CancelBooking("c1", "car", "a"), deadline)
    assert expect_done(car.handle(CancelBooking("c1", "car", "b"), deadline)).status == "CANCELLED", (
        "b starts 5 days later"
    )
    car.check_invariants()
    assert [owner for _, _, owner in car.calendar.intervals()] == ["a"]


def test_the_first_day_of_a_rental_starts_at_midnight_utc() -> None:
    assert start_of_day_ms(date(1970, 1, 2)) == DAY_MS
    assert day_of(start_of_day_ms(DAY0)) == DAY0
    assert day_of(start_of_day_ms(DAY0) - 1) == date.fromordinal(DAY0.toordinal() - 1)


@pytest.mark.parametrize("what", ["brand", "model", "location"])
def test_car_names_refuse_control_characters(what: str) -> None:
    names = {"brand": "Volvo", "model": "V60", "location": "Oslo", what: "bad\x00name"}
    command = RegisterCar("c9", names["brand"], names["model"], names["location"], 100)
    with pytest.raises(InvalidCommand, match=what):
        RentalCar("c9").handle(command, T0)


def test_a_block_reason_refuses_control_characters() -> None:
    car = rental_car()
    with pytest.raises(InvalidCommand, match="reason"):
        car.handle(BlockCar("c1", "m1", DAY0, date.fromordinal(DAY0.toordinal() + 1), "oil\r\nchange"), T0)


def test_a_car_registered_before_the_cutoff_existed_replays_with_none() -> None:
    old = codec.encode(("CarRegistered", 1, "c1", "Volvo", "V60", "Oslo", 100, 1, 0, 0, T0))
    car = RentalCar.replay("c1", [codec.decode_record(old)])
    assert car.cancel_cutoff_ms == 0
    assert car.view()["cancel_cutoff_s"] == 0


def test_a_cars_cutoff_is_part_of_its_definition() -> None:
    car = rental_car(cancel_cutoff_ms=HOUR)
    same = RegisterCar("c1", "Volvo", "V60", "Oslo", 10_000, 1, 0, 0, HOUR)
    assert expect_done(car.handle(same, T0)).changed is False
    with pytest.raises(AlreadyExists):
        car.handle(replace(same, cancel_cutoff_ms=2 * HOUR), T0)


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


def test_the_cutoff_survives_a_snapshot() -> None:
    car = rental_car(cancel_cutoff_ms=3 * HOUR)
    again = RentalCar.from_state("c1", car.version, car.to_state())
    assert again.cancel_cutoff_ms == 3 * HOUR


def test_the_events_that_end_a_car_booking_carry_no_quantities() -> None:
    car = rental_car()
    car.handle(car_hold("c1", "h1", 0, 3), T0)
    car.handle(ConfirmBooking("c1", "car", "h1"), T0)
    car.take_pending()
    car.handle(CancelBooking("c1", "car", "h1"), T0)
    [cancelled] = car.take_pending()
    assert isinstance(cancelled, BookingCancelled)
    assert cancelled.quantities is None
