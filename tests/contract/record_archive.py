"""The RecordArchive contract: one suite, run against the in-memory event store (tests/unit) and
the PostgreSQL event store (tests/integration), which both archive records under the fencing
tokens their `claim` records. A subclass provides the `store` fixture (an EventStore that is
also a RecordArchive); each test starts with an empty archive."""

from __future__ import annotations

import uuid
from typing import Protocol

import pytest

from engine.domain.errors import OwnershipLost
from engine.ports import ArchivedRecord, EventStore, RecordArchive

KEEP = 1_800_000_000_000  # a keep_until far enough ahead for every test that does not forget


class ArchivingStore(EventStore, RecordArchive, Protocol):
    pass


def sid() -> str:
    return f"event/{uuid.uuid4().hex[:10]}"


def row(key: str, record: bytes | None = None, keep_until: int = KEEP) -> ArchivedRecord:
    return ArchivedRecord(key, record if record is not None else key.encode(), keep_until)


class RecordArchiveContract:
    async def test_a_put_then_a_get_returns_the_records(self, store: ArchivingStore) -> None:
        s = sid()
        await store.claim(s, 1, "a")
        await store.put(s, 1, [row("hold-1", b"\x00one"), row("hold-2", b"two")])
        assert await store.get(s, ["hold-1", "hold-2"]) == {"hold-1": b"\x00one", "hold-2": b"two"}
        assert await store.get(s, ["hold-2"]) == {"hold-2": b"two"}

    async def test_a_second_put_of_a_key_replaces_its_record(self, store: ArchivingStore) -> None:
        s = sid()
        await store.claim(s, 1, "a")
        await store.put(s, 1, [row("hold-1", b"first"), row("hold-2", b"kept")])
        await store.put(s, 1, [row("hold-1", b"second", KEEP + 1)])
        assert await store.get(s, ["hold-1", "hold-2"]) == {"hold-1": b"second", "hold-2": b"kept"}

    async def test_a_key_given_twice_in_one_put_keeps_the_last_record(self, store: ArchivingStore) -> None:
        s = sid()
        await store.claim(s, 1, "a")
        await store.put(s, 1, [row("hold-1", b"first"), row("hold-1", b"last")])
        assert await store.get(s, ["hold-1"]) == {"hold-1": b"last"}

    async def test_a_get_of_unknown_keys_returns_nothing(self, store: ArchivingStore) -> None:
        s = sid()
        assert await store.get(s, ["hold-1"]) == {}
        await store.claim(s, 1, "a")
        await store.put(s, 1, [row("hold-1")])
        assert await store.get(s, ["hold-1", "hold-9"]) == {"hold-1": b"hold-1"}
        assert await store.get(s, ["hold-9"]) == {}

    async def test_a_get_never_returns_the_records_of_another_stream(self, store: ArchivingStore) -> None:
        mine, theirs = sid(), sid()
        await store.claim(mine, 1, "a")
        await store.claim(theirs, 1, "b")
        await store.put(theirs, 1, [row("hold-1", b"theirs"), row("saga-7", b"theirs")])
        assert await store.get(mine, ["hold-1", "saga-7"]) == {}
        await store.put(mine, 1, [row("hold-1", b"mine")])
        assert await store.get(mine, ["hold-1", "saga-7"]) == {"hold-1": b"mine"}
        assert await store.get(theirs, ["hold-1"]) == {"hold-1": b"theirs"}

    async def test_a_put_with_a_stale_token_raises_ownership_lost_and_stores_nothing(
        self, store: ArchivingStore
    ) -> None:
        s = sid()
        await store.claim(s, 5, "old")
        await store.put(s, 5, [row("hold-1", b"before")])
        await store.claim(s, 6, "new")
        with pytest.raises(OwnershipLost):
            await store.put(s, 5, [row("hold-1", b"stale"), row("hold-2", b"stale")])
        assert await store.get(s, ["hold-1", "hold-2"]) == {"hold-1": b"before"}

    async def test_the_new_owner_puts_under_its_own_token(self, store: ArchivingStore) -> None:
        s = sid()
        await store.claim(s, 5, "old")
        await store.put(s, 5, [row("hold-1", b"old")])
        await store.claim(s, 6, "new")
        await store.put(s, 6, [row("hold-1", b"new")])
        assert await store.get(s, ["hold-1"]) == {"hold-1": b"new"}

    async def test_a_put_with_a_token_never_claimed_is_refused(self, store: ArchivingStore) -> None:
        s = sid()
        await store.claim(s, 5, "a")
        with pytest.raises(OwnershipLost):
            await store.put(s, 7, [row("hold-1")])
        assert await store.get(s, ["hold-1"]) == {}

    async def test_a_put_for_an_unclaimed_stream_is_refused(self, store: ArchivingStore) -> None:
        s = sid()
        with pytest.raises(OwnershipLost):
            await store.put(s, 1, [row("hold-1")])
        assert await store.get(s, ["hold-1"]) == {}

    async def test_forget_deletes_only_rows_kept_until_before_the_bound(self, store: ArchivingStore) -> None:
        a, b = sid(), sid()
        for s in (a, b):
            await store.claim(s, 1, "a")
        await store.put(a, 1, [row("early", keep_until=100), row("edge", keep_until=200), row("late", keep_until=300)])
        await store.put(b, 1, [row("early", keep_until=199)])
        assert await store.forget(200) == 2
        assert await store.get(a, ["early", "edge", "late"]) == {"edge": b"edge", "late": b"late"}
        assert await store.get(b, ["early"]) == {}
        assert await store.forget(200) == 0

    async def test_forget_deletes_at_most_limit_rows_and_returns_how_many(self, store: ArchivingStore) -> None:
        s = sid()
        await store.claim(s, 1, "a")
        expired = [f"hold-{i}" for i in range(5)]
        await store.put(s, 1, [*(row(key, keep_until=100 + i) for i, key in enumerate(expired)), row("live")])
        assert await store.forget(1_000, limit=2) == 2
        assert len(await store.get(s, expired)) == 3
        assert await store.forget(1_000, limit=2) == 2
        assert await store.forget(1_000, limit=2) == 1
        assert await store.forget(1_000, limit=2) == 0
        assert await store.get(s, [*expired, "live"]) == {"live": b"live"}

    async def test_an_empty_put_and_an_empty_get_are_fine(self, store: ArchivingStore) -> None:
        s = sid()
        await store.claim(s, 1, "a")
        await store.put(s, 1, [])
        assert await store.get(s, []) == {}
        assert await store.forget(KEEP + 1) == 0
