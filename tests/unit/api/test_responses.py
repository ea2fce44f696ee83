"""Times in answers: the fast ISO 8601 formatting equals datetime's, to the millisecond."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from api.responses import iso_utc

LAST_MS_OF_9999 = 253_402_300_799_999


def reference(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@given(st.integers(0, LAST_MS_OF_9999))
def test_iso_utc_is_datetimes_isoformat_in_utc_with_milliseconds(ms: int) -> None:
    assert iso_utc(ms) == reference(ms)


def test_examples() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1_796_045_923_716) == "2026-11-30T13:38:43.716Z"
