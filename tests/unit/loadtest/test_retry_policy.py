"""How a load-test customer retries a hold."""

from __future__ import annotations

from loadtest.retry import NETWORK_ERROR, RetryPolicy

POLICY = RetryPolicy(max_attempts=4, first_pause_s=0.1, max_pause_s=1.0)


def test_a_network_error_or_a_503_is_retried_with_a_growing_pause() -> None:
    assert [POLICY.pause(NETWORK_ERROR, None, n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert POLICY.pause(503, None, 1) == 0.1


def test_a_503_retry_after_sets_the_pause_but_not_beyond_the_cap() -> None:
    assert POLICY.pause(503, "0.5", 1) == 0.5
    assert POLICY.pause(503, "30", 1) == 1.0


def test_a_429_waits_exactly_its_retry_after() -> None:
    assert POLICY.pause(429, "3", 1) == 3.0
    assert POLICY.pause(429, None, 1) == POLICY.default_retry_after_s


def test_final_answers_and_spent_attempts_stop_the_retries() -> None:
    for status in (201, 400, 404, 409, 422, 500):
        assert POLICY.pause(status, None, 1) is None
    assert POLICY.pause(503, None, 4) is None
