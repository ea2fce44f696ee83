"""KeyFilter: an added key is found for at least its lifetime, few unseen keys are flagged,
memory grows with the keys at a few bytes each, and the encoding round-trips."""

from __future__ import annotations

import itertools
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain.keyfilter import FORMAT, KeyFilter

LIFETIME = 1000


def _filled(n: int, first_capacity: int = 4096) -> KeyFilter:
    filt = KeyFilter(LIFETIME, first_capacity)
    for i in range(n):
        filt.add(f"hold-{i}", 0)
    return filt


@pytest.fixture(scope="module")
def hundred_thousand() -> KeyFilter:
    return _filled(100_000)


@settings(max_examples=100, deadline=None)
@given(
    start=st.integers(0, 2 * 10**12),
    adds=st.lists(st.tuples(st.text(max_size=8), st.integers(0, 2 * LIFETIME + 500)), max_size=60),
)
def test_a_key_added_is_always_found_until_its_lifetime_has_passed(start: int, adds: list[tuple[str, int]]) -> None:
    filt = KeyFilter(LIFETIME, first_capacity=2)
    now = start
    added = []
    for key, gap in adds:
        now += gap
        filt.add(key, now)
        added.append((key, now))
        assert filt.may_contain(key)
    for key, at in added:
        if now - at <= LIFETIME:
            assert filt.may_contain(key), (key, at, now)


@settings(max_examples=100, deadline=None)
@given(adds=st.lists(st.tuples(st.text(max_size=8), st.integers(0, 4 * LIFETIME)), max_size=60))
def test_a_key_is_found_for_its_lifetime_even_when_the_clock_steps_back(adds: list[tuple[str, int]]) -> None:
    filt = KeyFilter(LIFETIME, first_capacity=2)
    latest = 0
    for key, at in adds:
        filt.add(key, at)
        latest = max(latest, at)
    for key, at in adds:
        if latest - at <= LIFETIME:
            assert filt.may_contain(key), (key, at, latest)


def test_a_key_is_kept_for_at_least_its_lifetime_and_forgotten_after_two_rotations() -> None:
    filt = KeyFilter(LIFETIME)
    filt.add("early", 0)
    filt.add("late", LIFETIME - 1)
    filt.add("next-1", LIFETIME)  # rotates: early and late are the previous generation
    filt.add("next-2", 2 * LIFETIME - 1)
    assert filt.may_contain("early")
    assert filt.may_contain("late")
    assert len(filt) == 4

    filt.add("after", 2 * LIFETIME)  # rotates again: the generation of early and late is dropped

    assert not filt.may_contain("early")
    assert not filt.may_contain("late")
    assert filt.may_contain("next-1")
    assert filt.may_contain("next-2")
    assert len(filt) == 3


def test_two_lifetimes_without_an_add_forget_both_generations() -> None:
    filt = KeyFilter(LIFETIME)
    filt.add("old", 0)
    filt.add("newer", LIFETIME + 10)

    filt.add("now", 3 * LIFETIME + 10)

    assert len(filt) == 1
    assert not filt.may_contain("old")
    assert not filt.may_contain("newer")
    assert filt.may_contain("now")


def test_every_added_key_is_found(hundred_thousand: KeyFilter) -> None:
    assert len(hundred_thousand) == 100_000
    assert all(hundred_thousand.may_contain(f"hold-{i}") for i in range(0, 100_000, 7))


def test_fewer_unseen_keys_than_the_error_rate_are_reported_as_maybe_added(hundred_thousand: KeyFilter) -> None:
    trials = 200_000
    flagged = sum(hundred_thousand.may_contain(f"unseen-{i}") for i in range(trials))
    # The blocks' rates add up to at most 0.002; allow four standard deviations of chance on top.
    assert flagged / trials < 0.002 + 4 * math.sqrt(0.002 / trials)


def test_a_block_is_added_when_the_newest_one_is_full() -> None:
    filt = KeyFilter(LIFETIME, first_capacity=4)
    filt.add("k-0", 0)
    first_block = filt.nbytes
    assert first_block > 0
    for i in range(1, 4):
        filt.add(f"k-{i}", 0)
        assert filt.nbytes == first_block

    filt.add("k-4", 0)

    assert filt.nbytes >= 3 * first_block  # the second block holds twice the keys, at a tighter rate


def test_memory_grows_about_linearly_at_two_to_three_bytes_a_key() -> None:
    first_capacity = 256
    filt = KeyFilter(LIFETIME, first_capacity)
    sizes = []
    added = 0
    for blocks in range(1, 8):
        full = first_capacity * (2**blocks - 1)
        while added < full:
            filt.add(f"k-{added}", 0)
            added += 1
        sizes.append((full, filt.nbytes))

    for keys, nbytes in sizes:
        assert 1.7 <= nbytes / keys <= 3.0, (keys, nbytes)
    for (keys, nbytes), (more_keys, more_nbytes) in itertools.pairwise(sizes):
        assert 1.0 <= (more_nbytes / nbytes) / (more_keys / keys) <= 1.25


def test_a_filter_read_back_from_its_bytes_answers_and_rotates_like_the_original() -> None:
    filt = KeyFilter(LIFETIME, first_capacity=16)
    for i in range(100):
        filt.add(f"old-{i}", 10 + i)
    for i in range(300):
        filt.add(f"new-{i}", LIFETIME + 50 + i)  # rotated: a previous generation and a current one

    copy = KeyFilter.from_bytes(filt.to_bytes(), LIFETIME)

    assert copy.to_bytes() == filt.to_bytes()
    assert (len(copy), copy.nbytes, bool(copy)) == (len(filt), filt.nbytes, True)
    probes = [f"old-{i}" for i in range(100)] + [f"new-{i}" for i in range(300)] + [f"x-{i}" for i in range(5000)]
    assert [copy.may_contain(key) for key in probes] == [filt.may_contain(key) for key in probes]
    # The start times came along: both rotate at the same moment.
    for each in (filt, copy):
        each.add("just-before", 2 * LIFETIME + 49)
        assert each.may_contain("old-0")
        each.add("at-rotation", 2 * LIFETIME + 50)
        assert not each.may_contain("old-0")
    assert copy.to_bytes() == filt.to_bytes()


def test_an_empty_filter_round_trips() -> None:
    copy = KeyFilter.from_bytes(KeyFilter(LIFETIME).to_bytes(), LIFETIME)
    assert not copy
    assert len(copy) == 0


_VALID = _filled(40, first_capacity=16).to_bytes()
# A first block claiming 17 keys where 16 fit: format, first_capacity, error_rate; then the current
# generation (start, 1 block: count, m, k, bits) and an empty previous one.
_TOO_FULL = struct.pack("<BQdqBQQB", FORMAT, 16, 0.002, 0, 1, 17, 8, 1) + b"\xff" + struct.pack("<qB", 0, 0)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",
        b"not a key filter at all",
        _VALID[:-1],
        _VALID + b"\x00",
        _VALID[:20],
        bytes(len(_VALID)),
        _TOO_FULL,
    ],
    ids=["empty", "format byte only", "text", "truncated", "trailing byte", "header only", "zeros", "overfull block"],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="KeyFilter"):
        KeyFilter.from_bytes(data, LIFETIME)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown KeyFilter format"):
        KeyFilter.from_bytes(bytes([FORMAT + 1]) + _VALID[1:], LIFETIME)


def test_an_empty_filter_is_falsy_and_contains_nothing() -> None:
    filt = KeyFilter(LIFETIME)

    assert not filt
    assert len(filt) == 0
    assert filt.nbytes == 0
    assert not any(filt.may_contain(f"hold-{i}") for i in range(1000))
    assert not filt.may_contain("")

    filt.add("hold-0", 0)
    assert filt


def test_a_key_that_is_not_valid_utf8_is_remembered_too() -> None:
    filt = KeyFilter(LIFETIME)
    filt.add("lone \ud800 surrogate", 0)
    assert filt.may_contain("lone \ud800 surrogate")


@pytest.mark.parametrize(
    ("lifetime_ms", "first_capacity", "error_rate"),
    [(0, 4096, 0.002), (LIFETIME, 0, 0.002), (LIFETIME, 4096, 0.0), (LIFETIME, 4096, 1.0), (LIFETIME, 4096, math.nan)],
)
def test_nonsense_sizing_is_refused(lifetime_ms: int, first_capacity: int, error_rate: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        KeyFilter(lifetime_ms, first_capacity, error_rate)
