"""The EventStore contract: one suite, run against the in-memory fake (tests/unit) and the
PostgreSQL store (tests/integration). A subclass provides the `store` fixture."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from engine.domain.errors import OwnershipLost
from engine.ports import EventStore, NewEvent, Snapshot, StreamAppend, Turn


def sid() -> str:
    return f"event/{uuid.uuid4().hex[:10]}"


def events(*names: str) -> list[NewEvent]:
    return [NewEvent(name, name.encode()) for name in names]


class EventStoreContract:
    async def test_append_and_load_in_order(self, store: EventStore) -> None:
        s = sid()
        assert (await store.claim(s, 1, "a")).version == 0
        assert (await store.append([StreamAppend(s, 0, 1, events("A", "B"))])).failed == frozenset()
        assert (await store.append([StreamAppend(s, 2, 1, events("C"))])).failed == frozenset()
        loaded = await store.load(s)
        assert [(e.version, e.event_type, e.data) for e in loaded] == [(1, "A", b"A"), (2, "B", b"B"), (3, "C", b"C")]
        assert [e.version for e in await store.load(s, after_version=2)] == [3]

    async def test_group_commit_of_many_streams(self, store: EventStore) -> None:
        streams = [sid() for _ in range(50)]
        for s in streams:
            await store.claim(s, 1, "a")
        result = await store.append([StreamAppend(s, 0, 1, events("X", "Y")) for s in streams])
        assert result.failed == frozenset()
        for s in streams:
            assert [e.version for e in await store.load(s)] == [1, 2]

    async def test_wrong_expected_version_appends_nothing_for_that_stream_only(self, store: EventStore) -> None:
        good, bad = sid(), sid()
        for s in (good, bad):
            await store.claim(s, 1, "a")
        await store.append([StreamAppend(bad, 0, 1, events("A"))])
        result = await store.append([StreamAppend(good, 0, 1, events("G")), StreamAppend(bad, 0, 1, events("B"))])
        assert result.conflicts == frozenset({bad})
        assert result.fenced == frozenset()
        assert [e.event_type for e in await store.load(bad)] == ["A"]
        assert [e.event_type for e in await store.load(good)] == ["G"]

    async def test_a_newer_claim_fences_the_older_writer(self, store: EventStore) -> None:
        s = sid()
        await store.claim(s, 5, "old")
        await store.append([StreamAppend(s, 0, 5, events("A"))])
        assert (await store.claim(s, 6, "new")).version == 1
        stale = await store.append([StreamAppend(s, 1, 5, events("STALE"))])
        assert stale.fenced == frozenset({s})
        fresh = await store.append([StreamAppend(s, 1, 6, events("B"))])
        assert fresh.failed == frozenset()
        assert [e.event_type for e in await store.load(s)] == ["A", "B"]
        assert await store.current_token(s) == 6

    async def test_claiming_with_an_older_token_is_refused(self, store: EventStore) -> None:
        s = sid()
        await store.claim(s, 9, "new")
        with pytest.raises(OwnershipLost):
            await store.claim(s, 8, "old")
        assert await store.current_token(s) == 9

    async def test_reclaiming_with_the_same_token_is_allowed(self, store: EventStore) -> None:
        s = sid()
        await store.claim(s, 3, "a")
        assert (await store.claim(s, 3, "a")).version == 0

    async def test_an_unclaimed_stream_cannot_be_appended(self, store: EventStore) -> None:
        s = sid()
        result = await store.append([StreamAppend(s, 0, 1, events("A"))])
        assert result.conflicts == frozenset({s})
        assert await store.load(s) == []

    async def test_snapshots_keep_the_newest(self, store: EventStore) -> None:
        s = sid()
        assert await store.load_snapshot(s) is None
        await store.save_snapshot(Snapshot(s, 10, b"ten"))
        await store.save_snapshot(Snapshot(s, 7, b"seven"))
        assert await store.load_snapshot(s) == Snapshot(s, 10, b"ten")
        await store.save_snapshot(Snapshot(s, 12, b"twelve"))
        assert await store.load_snapshot(s) == Snapshot(s, 12, b"twelve")

    async def test_a_snapshot_saved_in_parts_loads_as_the_parts_joined(self, store: EventStore) -> None:
        s = sid()
        parts = [b"head", b"", bytes(range(256)) * 4096, b"\x00" * 300_000, b"tail"]  # a megabyte and more
        await store.save_snapshot_in_parts(s, 40, parts)
        assert await store.load_snapshot(s) == Snapshot(s, 40, b"".join(parts))

    async def test_snapshots_in_parts_keep_the_newest_as_whole_ones_do(self, store: EventStore) -> None:
        s = sid()
        await store.save_snapshot_in_parts(s, 10, [b"t", b"en"])
        await store.save_snapshot_in_parts(s, 7, [b"sev", b"en"])
        await store.save_snapshot_in_parts(s, 10, [b"ten ", b"again"])
        assert await store.load_snapshot(s) == Snapshot(s, 10, b"ten")
        await store.save_snapshot(Snapshot(s, 11, b"eleven"))
        await store.save_snapshot_in_parts(s, 9, [b"nine"])
        assert await store.load_snapshot(s) == Snapshot(s, 11, b"eleven")
        await store.save_snapshot_in_parts(s, 12, [b"twe", b"lve"])
        assert await store.load_snapshot(s) == Snapshot(s, 12, b"twelve")
        await store.save_snapshot(Snapshot(s, 12, b"twelve again"))
        assert await store.load_snapshot(s) == Snapshot(s, 12, b"twelve")

    async def test_snapshots_in_parts_saved_at_once_leave_the_newest(self, store: EventStore) -> None:
        s = sid()
        await store.save_snapshot(Snapshot(s, 1, b"one"))
        versions = [5, 9, 2, 8, 3]
        await asyncio.gather(*(store.save_snapshot_in_parts(s, v, [b"v", str(v).encode()] * 1000) for v in versions))
        assert await store.load_snapshot(s) == Snapshot(s, 9, b"v9" * 1000)

    async def test_turns_order_head_updates_even_when_the_later_append_starts_first(self, store: EventStore) -> None:
        s = sid()
        await store.claim(s, 1, "a")
        first = Turn()
        second = Turn(first.done)
        later = asyncio.create_task(store.append([StreamAppend(s, 2, 1, events("C"))], second))
        for _ in range(5):
            await asyncio.sleep(0.01)
        assert not later.done(), "the later append must wait for the earlier turn"
        assert (await store.append([StreamAppend(s, 0, 1, events("A", "B"))], first)).failed == frozenset()
        assert (await later).failed == frozenset()
        assert [e.event_type for e in await store.load(s)] == ["A", "B", "C"]

    async def test_empty_append_is_a_no_op(self, store: EventStore) -> None:
        assert (await store.append([])).failed == frozenset()

    async def test_two_appends_for_one_stream_in_one_call_are_refused(self, store: EventStore) -> None:
        s = sid()
        await store.claim(s, 1, "a")
        with pytest.raises(ValueError, match="one StreamAppend per stream"):
            await store.append([StreamAppend(s, 0, 1, events("A")), StreamAppend(s, 1, 1, events("B"))])


class InboxContract:
    """Messages recorded with the events they caused: all or nothing, per stream."""

    async def test_inbox_rows_are_recorded_with_their_events(self, store: EventStore) -> None:
        s = sid()
        await store.claim(s, 1, "a")
        append = StreamAppend(s, 0, 1, events("A"), inbox=[("payments", "m1"), ("payments", "m2")])
        assert (await store.append([append])).failed == frozenset()
        assert await store.processed("payments", ["m1", "m2", "m3"]) == {"m1", "m2"}
        assert await store.processed("results", ["m1"]) == set()

    async def test_a_refused_stream_records_no_inbox_row(self, store: EventStore) -> None:
        s = sid()
        await store.claim(s, 5, "new")
        stale = StreamAppend(s, 0, 4, events("A"), inbox=[("payments", "stale-1")])
        assert (await store.append([stale])).fenced == frozenset({s})
        assert await store.processed("payments", ["stale-1"]) == set()
