"""When a stuck step's message goes out again (engine/resend_backoff.py): at once, then at
doubling intervals up to the largest; a message no sweep finds any more is forgotten, and one
that could not be sent is due again."""

from __future__ import annotations

import pytest

from engine.resend_backoff import ResendBackoff


def sweep(backoff: ResendBackoff, keys: list[str], now: int) -> list[str]:
    due = backoff.due(keys, now)
    backoff.sent(due, now)
    return due


def test_a_message_is_due_when_first_found_then_at_doubling_intervals_up_to_the_largest() -> None:
    backoff = ResendBackoff(10, 35)
    sent_at = [now for now in range(0, 200) if sweep(backoff, ["m"], now)]
    assert sent_at == [0, 10, 30, 65, 100, 135, 170]


def test_messages_found_together_keep_their_own_intervals() -> None:
    backoff = ResendBackoff(10, 100)
    assert sweep(backoff, ["a"], 0) == ["a"]
    assert sweep(backoff, ["a", "b"], 5) == ["b"]
    assert sweep(backoff, ["a", "b"], 10) == ["a"]
    assert sweep(backoff, ["a", "b"], 15) == ["b"]
    assert sweep(backoff, ["a", "b"], 29) == []
    assert sweep(backoff, ["a", "b"], 30) == ["a"]


def test_a_message_not_sent_stays_due() -> None:
    """A publish that failed (the broker is down) is no re-send: the next sweep tries again."""
    backoff = ResendBackoff(10, 100)
    assert backoff.due(["a"], 0) == ["a"]
    assert backoff.due(["a"], 2) == ["a"]
    backoff.sent(["a"], 2)
    assert backoff.due(["a"], 4) == []
    assert backoff.due(["a"], 12) == ["a"]


def test_a_message_a_sweep_does_not_find_is_forgotten() -> None:
    """A hold decided or ended leaves the sweep's batch: its state goes, so memory stays a batch."""
    backoff = ResendBackoff(10, 100)
    sweep(backoff, ["a", "b"], 0)
    assert len(backoff) == 2
    assert sweep(backoff, ["b"], 1) == []
    assert len(backoff) == 1
    assert sweep(backoff, ["a", "b"], 2) == ["a"], "found again: a first re-send"


@pytest.mark.parametrize(("first", "largest"), [(0, 10), (-1, 10), (10, 9)])
def test_intervals_that_make_no_sense_are_refused(first: int, largest: int) -> None:
    with pytest.raises(ValueError, match="re-send intervals"):
        ResendBackoff(first, largest)
