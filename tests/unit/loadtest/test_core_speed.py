"""The cores' speed beside each step: a fixed piece of work timed in CPU time, summarised."""

from __future__ import annotations

import time

from loadtest.core_speed import CoreSpeedProbe, fixed_work, summarise, typical_ms
from loadtest.http_run import describe_step
from tests.unit.loadtest.steps import printable_step


def test_the_summary_is_the_mean_the_median_and_the_10th_and_90th_percentiles_of_the_samples() -> None:
    samples = [float(ms) for ms in range(1, 12)]  # 1 .. 11 ms
    assert summarise(samples) == {"mean_ms": 6.0, "median_ms": 6.0, "p10_ms": 2.0, "p90_ms": 10.0, "samples": 11}
    assert summarise([4.0]) == {"mean_ms": 4.0, "median_ms": 4.0, "p10_ms": 4.0, "p90_ms": 4.0, "samples": 1}
    assert summarise([]) is None


def test_cores_that_switched_speed_for_part_of_a_step_show_in_its_mean_not_its_median() -> None:
    fast_throughout = summarise([2.0] * 20)
    slow_for_a_third = summarise([2.0] * 13 + [3.3] * 7)
    assert fast_throughout is not None
    assert slow_for_a_third is not None
    assert fast_throughout["median_ms"] == slow_for_a_third["median_ms"] == 2.0
    assert typical_ms(slow_for_a_third) == 2.46 > typical_ms(fast_throughout) == 2.0


def test_a_summary_written_before_the_mean_was_kept_is_compared_by_its_median() -> None:
    assert typical_ms({"median_ms": 3.1, "p10_ms": 2.0, "p90_ms": 3.3, "samples": 20}) == 3.1


def test_the_probe_samples_until_it_is_stopped_and_summarises_what_it_sampled() -> None:
    probe = CoreSpeedProbe(every_s=0.01, iterations=20_000)
    probe.start()
    deadline = time.monotonic() + 5
    while len(probe.samples_ms) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    speed = probe.stop()
    assert speed is not None
    assert speed["samples"] >= 3
    assert 0 < speed["p10_ms"] <= speed["median_ms"] <= speed["p90_ms"] < 500
    assert len(probe.samples_ms) == speed["samples"], "nothing is sampled after stop"


def test_the_work_is_the_same_arithmetic_every_time() -> None:
    assert fixed_work(4) == 0 + 1 + 4 + 9
    assert fixed_work(1_000) == fixed_work(1_000)


def test_a_step_prints_the_cores_speed_and_a_step_without_the_probe_prints_none() -> None:
    speed = {"mean_ms": 7.4, "median_ms": 7.3, "p10_ms": 6.9, "p90_ms": 8.1, "samples": 20}
    text = describe_step(printable_step(core_speed=speed))
    assert "a fixed piece of work took 7.4 ms of CPU (mean of 20, median 7.3, p10-p90 6.9-8.1" in text
    assert "fixed piece of work" not in describe_step(printable_step())
