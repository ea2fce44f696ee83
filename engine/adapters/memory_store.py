"""An in-memory EventStore and RecordArchive with the PostgreSQL store's semantics, for unit tests
of the engine.

It passes the same contract tests as engine/adapters/pg_event_store.py (tests/contract/). The
archive checks a put's token against the heads that `claim` and `append` record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice

from engine.domain.errors import OwnershipLost, StoreUnavailable
from engine.ports import (
    AppendResult,
    ArchivedRecord,
    Claim,
    RecordedEvent,
    Snapshot,
    StreamAppend,
    Turn,
    check_one_append_per_stream,
)


@dataclass
class _Head:
    version: int = 0
    token: int = 0
    owner: str = ""


@dataclass
class InMemoryEventStore:
    heads: dict[str, _Head] = field(default_factory=dict)
    streams: dict[str, list[RecordedEvent]] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    log: list[RecordedEvent] = field(default_factory=list)
    inbox: set[tuple[str, str]] = field(default_factory=set)
    archive: dict[str, dict[str, ArchivedRecord]] = field(default_factory=dict)  # stream -> key -> row
    fail_next_appends: int = 0  # fault injection for tests: the next N appends raise
    append_calls: int = 0

    async def claim(self, stream_id: str, token: int, owner: str) -> Claim:
        await asyncio.sleep(0)
        head = self.heads.setdefault(stream_id, _Head())
        if head.token > token:
            raise OwnershipLost(f"{stream_id} is owned with token {head.token} > {token}")
        head.token, head.owner = token, owner
        return Claim(stream_id, head.version)

    async def current_token(self, stream_id: str) -> int:
        head = self.heads.get(stream_id)
        return head.token if head else 0

    async def append(self, appends: Sequence[StreamAppend], turn: Turn | None = None) -> AppendResult:
        self.append_calls += 1
        check_one_append_per_stream(appends)
        await asyncio.sleep(0)
        if turn is None:
            return self._append(appends)
        async with turn:
            return self._append(appends)

    def _append(self, appends: Sequence[StreamAppend]) -> AppendResult:
        if self.fail_next_appends > 0:
            self.fail_next_appends -= 1
            raise StoreUnavailable("injected append failure")
        fenced: set[str] = set()
        conflicts: set[str] = set()
        for item in appends:
            head = self.heads.get(item.stream_id)
            if head is None or head.version != item.expected_version:
                if head is not None and head.token > item.token:
                    fenced.add(item.stream_id)
                else:
                    conflicts.add(item.stream_id)
                continue
            if head.token > item.token:
                fenced.add(item.stream_id)
                continue
            stream = self.streams.setdefault(item.stream_id, [])
            for i, event in enumerate(item.events, start=item.expected_version + 1):
                recorded = RecordedEvent(item.stream_id, i, event.event_type, event.data, len(self.log) + 1)
                stream.append(recorded)
                self.log.append(recorded)
            head.version = item.expected_version + len(item.events)
            head.token = item.token
            self.inbox.update(item.inbox)
        return AppendResult(frozenset(fenced), frozenset(conflicts))

    async def load(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        await asyncio.sleep(0)
        return [e for e in self.streams.get(stream_id, []) if e.version > after_version]

    async def processed(self, consumer: str, message_ids: Sequence[str]) -> set[str]:
        return {m for m in message_ids if (consumer, m) in self.inbox}

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return self.snapshots.get(stream_id)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        current = self.snapshots.get(snapshot.stream_id)
        if current is None or current.version < snapshot.version:
            self.snapshots[snapshot.stream_id] = snapshot

    async def save_snapshot_in_parts(self, stream_id: str, version: int, parts: Sequence[bytes]) -> None:
        await self.save_snapshot(Snapshot(stream_id, version, b"".join(parts)))

    async def put(self, stream_id: str, token: int, rows: Sequence[ArchivedRecord]) -> None:
        if not rows:
            return
        await asyncio.sleep(0)
        head = self.heads.get(stream_id)
        if head is None or head.token != token:
            recorded = head.token if head else 0
            raise OwnershipLost(f"{stream_id} is owned with token {recorded}, not {token}")
        archived = self.archive.setdefault(stream_id, {})
        for row in rows:
            archived[row.key] = row

    async def get(self, stream_id: str, keys: Sequence[str]) -> dict[str, bytes]:
        if not keys:
            return {}
        await asyncio.sleep(0)
        archived = self.archive.get(stream_id, {})
        return {key: archived[key].record for key in keys if key in archived}

    async def forget(self, before_ms: int, limit: int = 10_000) -> int:
        if limit <= 0:
            return 0
        await asyncio.sleep(0)
        expired = (
            (stream_id, key)
            for stream_id, archived in self.archive.items()
            for key, row in archived.items()
            if row.keep_until < before_ms
        )
        doomed = list(islice(expired, limit))
        for stream_id, key in doomed:
            del self.archive[stream_id][key]
            if not self.archive[stream_id]:
                del self.archive[stream_id]
        return len(doomed)
