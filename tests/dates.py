"""Event starts relative to today, for tests: an event may not start in the past (nor more than
the booking horizon ahead), so a fixed date in a test would break on the day it passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def starts_in(days: int, at: str = "20:00:00+00:00") -> str:
    """An ISO 8601 start `days` days after today (UTC), at the time and offset `at`."""
    return f"{(datetime.now(UTC).date() + timedelta(days=days)).isoformat()}T{at}"
