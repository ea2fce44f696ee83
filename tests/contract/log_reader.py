"""The LogReader contract: one suite, run against the in-memory fake (tests/unit) and the
PostgreSQL reader (tests/integration). A subclass provides `store` (an EventStore writing the log
the reader reads, empty at the start of each test) and `reader`."""

from __future__ import annotations

import asyncio
import uuid

from engine.log import START, LogCheckpoint, LoggedEvent
from engine.ports import EventStore, LogReader, NewEvent, StreamAppend


def sid() -> str:
    return f"event/{uuid.uuid4().hex[:10]}"


async def append(store: EventStore, stream_counts: dict[str, int], types: str = "E") -> None:
    """One group commit: `count` more events for each stream (claimed with token 1)."""
    appends = []
    for stream, count in stream_counts.items():
        version = (await store.claim(stream, 1, "test")).version
        events = [NewEvent(types, f"{stream}#{version + i + 1}".encode()) for i in range(count)]
        appends.append(StreamAppend(stream, version, 1, events))
    result = await store.append(appends)
    assert result.failed == frozenset()


async def read_all(reader: LogReader, after: LogCheckpoint = START, page: int = 1000) -> list[LoggedEvent]:
    events: list[LoggedEvent] = []
    while batch := await reader.read_after(after, page):
        events.extend(batch)
        after = batch[-1].checkpoint
    return events


class LogReaderContract:
    async def test_an_empty_log_reads_nothing(self, reader: LogReader) -> None:
        assert await reader.read_after(START, 10) == []
        assert await reader.lag(START) == 0

    async def test_reads_every_event_with_its_stream_version_and_place(
        self, store: EventStore, reader: LogReader
    ) -> None:
        a, b = sid(), sid()
        await append(store, {a: 2, b: 1})
        await append(store, {a: 1})
        events = await reader.read_after(START, 10)
        expected = [(a, 1), (a, 2), (a, 3), (b, 1)]
        assert sorted((e.stream_id, e.version, e.data) for e in events) == sorted(
            (s, v, f"{s}#{v}".encode()) for s, v in expected
        )
        assert all(e.event_type == "E" and e.recorded_at_ms > 0 and e.txid > 0 for e in events)
        places = [(e.txid, e.position) for e in events]
        assert places == sorted(places), "the log is read in (txid, position) order"
        assert len({e.position for e in events}) == 4
        # A stream's events come in version order.
        assert [e.version for e in events if e.stream_id == a] == [1, 2, 3]

    async def test_paging_by_the_last_checkpoint_sees_each_event_once(
        self, store: EventStore, reader: LogReader
    ) -> None:
        streams = [sid() for _ in range(5)]
        for round_ in range(4):
            await append(store, {s: 1 + (i + round_) % 3 for i, s in enumerate(streams)})
        everything = await reader.read_after(START, 1000)
        assert len(everything) == sum(1 + (i + r) % 3 for r in range(4) for i in range(5))
        paged = await read_all(reader, page=7)
        assert paged == everything
        middle = everything[10].checkpoint
        assert await reader.read_after(middle, 1000) == everything[11:]
        assert await reader.read_after(everything[-1].checkpoint, 10) == []

    async def test_a_limit_caps_the_batch(self, store: EventStore, reader: LogReader) -> None:
        await append(store, {sid(): 5})
        assert len(await reader.read_after(START, 3)) == 3

    async def test_reading_matching_types_returns_those_events_and_moves_past_the_others(
        self, store: EventStore, reader: LogReader
    ) -> None:
        a, b = sid(), sid()
        await append(store, {a: 2}, types="Wanted")
        await append(store, {b: 3}, types="Other")
        await append(store, {a: 1}, types="Wanted")
        await append(store, {b: 2}, types="Other")
        everything = await reader.read_after(START, 100)
        wanted = [e for e in everything if e.event_type == "Wanted"]
        events, to, scanned = await reader.read_matching(START, 100, {"Wanted"})
        assert (events, to, scanned) == (wanted, everything[-1].checkpoint, 8)
        # A limit counts the events scanned, matching or not; the checkpoint is the last scanned.
        events, to, scanned = await reader.read_matching(START, 4, {"Wanted"})
        assert (events, to, scanned) == (wanted[:2], everything[3].checkpoint, 4)
        events, to, scanned = await reader.read_matching(to, 100, {"Wanted"})
        assert (events, to, scanned) == (wanted[2:], everything[-1].checkpoint, 4)
        # A last scanned event that matches comes once, and is the checkpoint.
        events, to_wanted, scanned = await reader.read_matching(START, 6, {"Wanted"})
        assert (events, to_wanted, scanned) == (wanted, everything[5].checkpoint, 6)
        # Nothing after the end: the checkpoint given back, nothing scanned.
        assert await reader.read_matching(to, 100, {"Wanted"}) == ([], to, 0)
        # A run of other events only moves the checkpoint.
        assert await reader.read_matching(everything[5].checkpoint, 100, {"Wanted"}) == (
            [],
            everything[-1].checkpoint,
            2,
        )

    async def test_a_reader_without_a_checkpoint_starts_at_the_start(self, reader: LogReader) -> None:
        assert await reader.load_checkpoint(f"nobody-{uuid.uuid4().hex[:6]}") == START

    async def test_checkpoints_are_saved_per_name_and_never_move_backwards(self, reader: LogReader) -> None:
        one, two = f"one-{uuid.uuid4().hex[:6]}", f"two-{uuid.uuid4().hex[:6]}"
        await reader.save_checkpoint(one, LogCheckpoint(100, 7))
        assert await reader.load_checkpoint(one) == LogCheckpoint(100, 7)
        assert await reader.load_checkpoint(two) == START
        await reader.save_checkpoint(one, LogCheckpoint(100, 5))  # an older save arriving late
        assert await reader.load_checkpoint(one) == LogCheckpoint(100, 7)
        await reader.save_checkpoint(one, LogCheckpoint(99, 50))  # a lower txid is earlier, whatever the position
        assert await reader.load_checkpoint(one) == LogCheckpoint(100, 7)
        await reader.save_checkpoint(one, LogCheckpoint(101, 3))  # a later txid is later, whatever the position
        assert await reader.load_checkpoint(one) == LogCheckpoint(101, 3)
        await reader.save_checkpoint(two, LogCheckpoint(5, 5))
        assert await reader.load_checkpoint(one) == LogCheckpoint(101, 3)
        assert await reader.load_checkpoint(two) == LogCheckpoint(5, 5)

    async def test_lag_counts_the_events_after_a_checkpoint(self, store: EventStore, reader: LogReader) -> None:
        await append(store, {sid(): 4, sid(): 2})
        events = await reader.read_after(START, 100)
        assert await reader.lag(START) == 6
        assert await reader.lag(events[1].checkpoint) == 4
        assert await reader.lag(events[-1].checkpoint) == 0

    async def test_listen_calls_back_after_an_append_until_closed(self, store: EventStore, reader: LogReader) -> None:
        calls = 0
        woken = asyncio.Event()

        def on_append() -> None:
            nonlocal calls
            calls += 1
            woken.set()

        subscription = await reader.listen(on_append)
        try:
            assert subscription.is_active()
            await append(store, {sid(): 3, sid(): 1})
            await asyncio.wait_for(woken.wait(), 5)
        finally:
            await subscription.close()
        assert not subscription.is_active()
        seen = calls
        await append(store, {sid(): 1})
        await asyncio.sleep(0.3)
        assert calls == seen, "no callback after close"
