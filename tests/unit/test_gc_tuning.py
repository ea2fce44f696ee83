"""The garbage-collector settings of long-lived processes (actors/gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from actors import gc_tuning


@pytest.fixture
def collector_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector_restored")
def test_a_settled_request_loop_leaves_what_it_built_out_of_the_collectors_sight() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    gc_tuning.settle_request_loop()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (gc_tuning.YOUNG_THRESHOLD, gc_tuning.GEN1_EVERY, gc_tuning.GEN1_EVERY)


@pytest.mark.usefixtures("collector_restored")
def test_a_settled_request_loop_still_collects_garbage_made_later_in_full() -> None:
    gc_tuning.settle_request_loop()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    del a, b
    assert gc.collect() >= 2, "the cycle made after settling was not collected"
