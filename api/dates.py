"""Dates a request may name: event starts and car rentals within the booking horizon.

The engine refuses what can never be right (a start in the past, a date more than
MAX_HORIZON_DAYS ahead: engine/domain/aggregate.py). The API applies the operator's tighter
horizon, REZERV_BOOKING_HORIZON_DAYS, so that a calendar cannot be squatted years ahead; both
answer with the same problem codes (422 `date-in-the-past`, 422 `date-beyond-horizon`).

Car rentals are days in UTC, as in the engine: a rental may start today (UTC), and must end at
most the horizon's number of days after today.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from api.errors import ApiProblem, status_of
from engine.config import Settings
from engine.domain.errors import DateBeyondHorizon, DateInThePast


def _problem(error: type[DateInThePast | DateBeyondHorizon], detail: str) -> ApiProblem:
    status, title = status_of(error())
    return ApiProblem(status, error.code, title, detail)


def check_event_start(settings: Settings, starts_at: datetime, now: datetime) -> None:
    """Raise ApiProblem 422 unless the event starts after `now` and within the horizon."""
    if starts_at <= now:
        raise _problem(DateInThePast, f"starts_at {starts_at.isoformat()} is not in the future")
    horizon = settings.booking_horizon_days
    if starts_at > now + timedelta(days=horizon):
        raise _problem(
            DateBeyondHorizon,
            f"starts_at {starts_at.isoformat()} is more than {horizon} days ahead (REZERV_BOOKING_HORIZON_DAYS)",
        )


def check_rental(settings: Settings, start: date, end: date, today: date) -> None:
    """Raise ApiProblem 422 unless the rental starts today or later and ends within the horizon."""
    if start < today:
        raise _problem(DateInThePast, f"the rental starts {start.isoformat()}, before today ({today.isoformat()}, UTC)")
    horizon = settings.booking_horizon_days
    if (end - today).days > horizon:
        raise _problem(
            DateBeyondHorizon,
            f"the rental ends {end.isoformat()}, more than {horizon} days after today (REZERV_BOOKING_HORIZON_DAYS)",
        )
