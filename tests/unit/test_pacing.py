"""The pacer keeps background work to its share of the time: on a clock and a sleep moved by hand."""

from __future__ import annotations

import pytest

from engine.pacing import Pacer


class HandClock:
    """A clock that a step moves forward, and a sleep that records its rest and moves the clock by it."""

    def __init__(self) -> None:
        self.t = 100.0
        self.rests: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.rests.append(seconds)
        self.t += seconds


async def test_a_step_is_followed_by_a_rest_that_keeps_the_work_to_its_share() -> None:
    clock = HandClock()
    pacer = Pacer(0.25, now=clock.now, sleep=clock.sleep)
    clock.t += 0.010  # a step of 10 ms
    await pacer.rest()
    clock.t += 0.002  # then one of 2 ms
    await pacer.rest()
    assert clock.rests == pytest.approx([0.030, 0.006]), "at a quarter of the time, three times as long resting"
    assert pacer.rested == pytest.approx(0.036)


async def test_the_rest_itself_does_not_count_as_work() -> None:
    clock = HandClock()
    pacer = Pacer(0.5, now=clock.now, sleep=clock.sleep)
    clock.t += 0.004
    await pacer.rest()  # rests 4 ms, moving the clock
    await pacer.rest()  # no work since
    assert clock.rests == pytest.approx([0.004, 0.0])


async def test_a_full_share_passes_the_event_loop_without_resting() -> None:
    clock = HandClock()
    pacer = Pacer(1.0, now=clock.now, sleep=clock.sleep)
    clock.t += 0.050
    await pacer.rest()
    assert clock.rests == [0.0]


async def test_a_clock_that_goes_back_is_no_negative_rest() -> None:
    clock = HandClock()
    pacer = Pacer(0.5, now=clock.now, sleep=clock.sleep)
    clock.t -= 1.0
    await pacer.rest()
    assert clock.rests == [0.0]


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        Pacer(share)
