"""`rezerv bench snapshot` saves, both ways, the snapshot it built, and reads back what it measured."""

from __future__ import annotations

import time

import asyncpg
import pytest

from engine.adapters.pg_event_store import PostgresEventStore
from engine.domain.aggregate import BookingHost
from engine.domain.booking import BookingStatus
from engine.domain.entities import decode_snapshot
from loadtest.bench_snapshot import HOW, PIECE, hot_event, measure, parts_of
from tests.contract.event_store import sid


def test_the_hot_event_holds_as_many_confirmed_bookings_as_asked_and_its_pieces_are_its_snapshot() -> None:
    event = hot_event(PIECE + 500, int(time.time() * 1000))
    assert {b.status for b in event.bookings.values()} == {BookingStatus.CONFIRMED}
    version, parts = parts_of(event)
    assert len(parts) == 2 + 2 + 1  # the state before the bookings, their count, two pieces, the rest
    restored = decode_snapshot(event.stream_id, version, b"".join(parts))
    assert isinstance(restored, BookingHost)
    assert len(restored.bookings) == PIECE + 500


@pytest.mark.parametrize("how", HOW)
async def test_each_way_stores_the_snapshot_and_counts_its_parts(pool: asyncpg.Pool, how: str) -> None:
    version, parts = parts_of(hot_event(PIECE * 2, int(time.time() * 1000)))
    stream = sid()
    figures = await measure(PostgresEventStore(pool), how, stream, version, parts, PIECE * 2)
    assert figures.how == how
    assert figures.bookings == PIECE * 2
    assert figures.parts == len(parts)
    assert figures.megabytes == round(sum(map(len, parts)) / 1e6, 1)
    assert 0 < figures.loop_held_next_ms <= figures.loop_held_max_ms
    assert figures.cpu_ms > 0
    assert figures.save_ms > 0
