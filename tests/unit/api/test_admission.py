"""The in-progress limit follows Little's law on the completions of the last second."""

from __future__ import annotations

import pytest

from api.admission import Admission


def run(admission: Admission, per_second: int, seconds: int, start: float = 0.0) -> float:
    now = start
    for _ in range(seconds):
        for i in range(per_second):
            admission.completed(now + (i + 1) / per_second)
        now += 1.0
    return now


def test_until_a_second_is_measured_the_limit_is_the_ceiling() -> None:
    admission = Admission(0.15, floor=64, ceiling=1024, now=0.0)
    assert admission.limit == 1024
    assert admission.admits(1023)
    assert not admission.admits(1024)


def test_the_limit_is_the_completion_rate_times_the_target_latency() -> None:
    admission = Admission(0.15, floor=64, ceiling=1024, now=0.0)
    run(admission, per_second=2000, seconds=3)
    assert admission.limit == pytest.approx(300, abs=2)
    assert admission.admits(299)
    assert not admission.admits(301)


def test_the_limit_follows_the_rate_down_and_up_between_floor_and_ceiling() -> None:
    admission = Admission(0.15, floor=64, ceiling=500, now=0.0)
    now = run(admission, per_second=100, seconds=2)
    assert admission.limit == 64, "a slow second does not turn ordinary traffic away"
    run(admission, per_second=10_000, seconds=2, start=now)
    assert admission.limit == 500


def test_floor_above_ceiling_is_refused() -> None:
    with pytest.raises(ValueError, match="floor"):
        Admission(0.1, floor=10, ceiling=5, now=0.0)
