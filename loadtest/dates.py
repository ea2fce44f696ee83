"""Dates of the catalogs the load tests create, relative to today: rezerv refuses an event that
starts in the past or a rental that begins before today (and both beyond the booking horizon),
so a fixed date would stop working on the day it passes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def days_ahead(days: int) -> date:
    """Today (UTC) plus `days`."""
    return datetime.now(UTC).date() + timedelta(days=days)


def starts_in(days: int) -> str:
    """An event start `days` days from today at 20:00 UTC, ISO 8601."""
    return f"{days_ahead(days).isoformat()}T20:00:00+00:00"
