"""`rezerv bench append` measures appends it really made, in the shape it names."""

from __future__ import annotations

import asyncpg
import pytest

from loadtest.bench_append import SHAPES, Size, commits_for, measure


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_each_shape_stores_every_event_of_every_commit_it_counts(pool: asyncpg.Pool, shape: str) -> None:
    figures = await measure(pool, pool, shape, Size(3, 2), commits=12)
    assert figures.shape == shape
    assert figures.commits == 12
    assert figures.events_stored == 12 * 3 * 2
    assert figures.commits_per_s > 0
    assert 0 < figures.p50_ms <= figures.p99_ms


def test_a_group_size_reads_as_streams_by_events() -> None:
    assert Size.parse("20x1") == Size(20, 1)
    assert Size.parse("7") == Size(7, 1)
    assert str(Size(1, 9)) == "1x9"
    with pytest.raises(ValueError, match="at least one stream"):
        Size.parse("0x5")


def test_each_size_gets_enough_commits_for_the_events_asked_and_never_fewer_than_200() -> None:
    assert commits_for(Size(1, 9), 9000) == 1000
    assert commits_for(Size(1, 1000), 9000) == 200
