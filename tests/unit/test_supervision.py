"""The restart policy of `rezerv up`: backoff per recent failure, forgetting old failures, giving up."""

from __future__ import annotations

from stack.supervision import GiveUp, Restart, RestartPolicy, StepTimer


def test_restarts_back_off_doubling_up_to_the_cap() -> None:
    policy = RestartPolicy(limit=10, window_s=1000, first_delay_s=0.5, max_delay_s=3)
    delays = [policy.failed(float(t)) for t in range(5)]
    assert delays == [Restart(0.5, 1), Restart(1.0, 2), Restart(2.0, 3), Restart(3, 4), Restart(3, 5)]


def test_one_failure_more_than_the_limit_within_the_window_gives_up() -> None:
    policy = RestartPolicy(limit=3, window_s=60)
    assert all(isinstance(policy.failed(t), Restart) for t in (0.0, 10.0, 20.0))
    assert policy.failed(30.0) == GiveUp(4)


def test_failures_older_than_the_window_are_forgotten() -> None:
    policy = RestartPolicy(limit=2, window_s=60)
    policy.failed(0.0)
    policy.failed(30.0)
    assert policy.failed(61.0) == Restart(1.0, 2)  # the failure at 0 s left the window
    assert policy.failed(70.0) == GiveUp(3)


def test_a_step_timer_names_each_step_with_the_time_since_the_one_before() -> None:
    ticks = iter([10.0, 14.75, 21.0, 21.04])
    steps = StepTimer(clock=lambda: next(ticks))
    steps.done("old head stopped")
    steps.done("head started")
    steps.done("API ready")
    assert str(steps) == "old head stopped 4.8 s, head started 6.2 s, API ready 0.0 s"
