"""The PostgreSQL event store (asyncpg): fenced, optimistic, group-committed appends.

One transaction per group commit, in one of two shapes that obey the same rules:

- Up to `one_statement_max` events over at most `one_statement_streams_max` streams (the hot
  path's groups at moderate load: a few to a few dozen holds of one event): one statement, its own
  transaction, that locks the heads, moves those it may and inserts the events and inbox rows of
  the streams it moved. One round trip and one commit, where the other shape takes five (BEGIN,
  COPY's two, the head UPDATE, COMMIT): at 9 events a group it took 35-45% less time, 55-65% less
  CPU from the caller and 20-35% less from PostgreSQL (BENCHMARKS.md, section 1).
- Above it: ``BEGIN; COPY the events; UPDATE the stream heads; COMMIT``. COPY, because on large
  groups it costs PostgreSQL about 3.4 us of CPU per event against 4.7 us for an INSERT from
  unnest, and asyncpg less than encoding the arrays; on a 2-core machine that CPU is shared with
  the shards.

In both:
- The head UPDATE moves each stream's head only if the writer's fencing token is not older than
  the recorded one and its expected version is the head's version, and a stream's events are
  kept only if its head moved, so per stream it is all or nothing (the statement inserts them
  only for the heads it moved; the COPY shape deletes the others again inside its transaction,
  only its own rows, `txid = pg_current_xact_id()`). The head rows stay locked until the commit,
  which is what serializes a fencing handover with an append in flight.
- Head UPDATEs run one at a time and in the order the host formed its groups (the `Turn` the
  committer passes in): a transaction blocked on a head row then only ever waits for one that
  has finished its UPDATE and is committing, so two appends of one host can never deadlock each
  other, and a later group never finds a stream short of the version it expects. The COPY shape
  copies before taking its turn, so that with two group commits in flight (engine/group_commit.py)
  the second copies its events while the first commits; the statement takes its turn whole.

The store is also the RecordArchive (`record_archive`, engine/migrations/0034_record_archive.sql):
settled records a host moved out of memory, written under the stream's fencing token.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

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

# The rules of a head move, shared by both shapes. `locked` takes the head rows' locks first. If
# another transaction holds one (the host's previous group commit, or a fencing claim), SELECT ...
# FOR UPDATE waits for it and then returns the row's newest version, so the token and version
# tests of `ok` judge the head as it is now. (A plain `UPDATE ... WHERE version = expected` would
# judge by the snapshot taken when the statement began and silently skip a head another
# transaction had just moved.) `locked` finds the heads by `= ANY` of the ids, not by a join
# with `h`: for a group of a few dozen streams (a saga batch's wallets) PostgreSQL joined by
# reading the whole `streams` table (2,300 rows in the flash sale's load test, about 490 rows
# read per confirmed booking at 16 users), where `= ANY` always takes the primary key.
_HEAD_RULES = """h AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::bigint[]) AS u(stream_id, expected, new_version, token)
), locked AS (
    SELECT s.stream_id, s.version, s.token FROM streams AS s
     WHERE s.stream_id = ANY($1::text[])
       FOR UPDATE
), ok AS (
    SELECT h.stream_id, h.new_version, h.token FROM h JOIN locked AS l USING (stream_id)
     WHERE l.token <= h.token AND l.version = h.expected
)"""

_MOVE = """UPDATE streams AS s SET version = ok.new_version, token = ok.token, updated_at = now()
  FROM ok
 WHERE s.stream_id = ok.stream_id
RETURNING s.stream_id"""

_MOVE_HEADS = f"WITH {_HEAD_RULES}\n{_MOVE}"

_EVENT_COLUMNS = ["stream_id", "version", "event_type", "data"]

ONE_STATEMENT_MAX = 128
ONE_STATEMENT_STREAMS_MAX = 32
"""Groups of at most ONE_STATEMENT_MAX events over at most ONE_STATEMENT_STREAMS_MAX streams are
appended in one statement (module docstring). The crossover measured on this project's machine
(`rezerv bench append`, BENCHMARKS.md section 1): the statement took less time and CPU up to ~100
events on one stream and at 20 streams, about as much at 100 streams or 300 events, and more at
1,000 events (asyncpg encodes the arrays at twice COPY's cost)."""

# The small shape: the head rules and the move above; the events and inbox rows are inserted only
# for the streams `moved` returned, in the statement's own transaction, so per stream it is all or
# nothing without an undo. Every locked head comes back, with whether it moved, for the caller to
# tell a fenced stream from a conflict.
_APPEND_IN_ONE = f"""WITH {_HEAD_RULES}, moved AS (
{_MOVE}
), stored AS (
    INSERT INTO events (stream_id, version, event_type, data)
    SELECT e.stream_id, e.version, e.event_type, e.data
      FROM unnest($5::text[], $6::int[], $7::text[], $8::bytea[]) AS e(stream_id, version, event_type, data)
     WHERE e.stream_id IN (SELECT stream_id FROM moved)
), inbox AS (
    INSERT INTO processed_messages (consumer, message_id, stream_id)
    SELECT i.consumer, i.message_id, i.stream_id
      FROM unnest($9::text[], $10::text[], $11::text[]) AS i(consumer, message_id, stream_id)
     WHERE i.stream_id IN (SELECT stream_id FROM moved)
    ON CONFLICT DO NOTHING
)
SELECT l.stream_id, l.version, l.token, l.stream_id IN (SELECT stream_id FROM moved) AS moved FROM locked AS l"""

_UNDO_EVENTS = "DELETE FROM events WHERE stream_id = ANY($1) AND txid = pg_current_xact_id()"

_CLAIM = """
INSERT INTO streams (stream_id, version, token, owner) VALUES ($1, 0, $2, $3)
ON CONFLICT (stream_id) DO UPDATE SET token = excluded.token, owner = excluded.owner, updated_at = now()
 WHERE streams.token <= excluded.token
RETURNING version
"""

_SAVE_SNAPSHOT = """
INSERT INTO snapshots (stream_id, version, state) VALUES ($1, $2, $3)
ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state, taken_at = now()
 WHERE snapshots.version < excluded.version
"""

# A snapshot sent in parts (save_snapshot_in_parts): under the stream's lock, the older row goes,
# and the answer says whether one as new or newer stays (then there is nothing to send). The
# statement's CTE deletes; its SELECT still sees the rows as they were, of which only a newer one
# can match.
_LOCK_SNAPSHOT = "SELECT pg_advisory_xact_lock(hashtext('snapshot:' || $1))"
_MAKE_ROOM_FOR_SNAPSHOT = """
WITH older AS (DELETE FROM snapshots WHERE stream_id = $1 AND version < $2)
SELECT EXISTS (SELECT 1 FROM snapshots WHERE stream_id = $1 AND version >= $2)
"""
_SNAPSHOT_COLUMNS = ("stream_id", "version", "state")
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # no flags, no header extension


async def snapshot_copy_rows(stream_id: str, version: int, parts: Sequence[bytes]) -> AsyncIterator[bytes]:
    """The snapshot's row in COPY's binary format, yielded a part at a time with a pass of the
    event loop after each, so that calls waiting on the loop are answered between the parts
    (asyncpg's COPY only suspends on its own when the socket's buffer is full)."""
    sid = stream_id.encode()
    state = sum(map(len, parts))
    yield b"".join((_COPY_SIGNATURE, struct.pack("!hi", 3, len(sid)), sid, struct.pack("!iii", 4, version, state)))
    for part in parts:
        if part:
            yield part
            await asyncio.sleep(0)
    yield struct.pack("!h", -1)  # the end of the rows


# Two statements in one transaction, the lock last. The rows are inserted first, invisible to
# anyone until the commit; then the stream's row is read FOR SHARE: a claim in flight (which updates
# that row) is waited for and its token seen, and a claim after it waits for this transaction to
# commit, so no put lands under a token a claim has already fenced. A token other than the
# caller's (NULL for a stream never claimed) rolls the rows back. The lock is last because it also
# holds back the stream's appends (their UPDATE of the same row waits for it): taken first, as
# until 2026-12-05, the hot event's commits waited for every insert of 1,000 archived records
# under load (BENCHMARKS.md); taken last, they wait for the commit only.
_ARCHIVE_INSERT = """
INSERT INTO record_archive (stream_id, key, record, keep_until)
SELECT $1, u.key, u.record, u.keep_until
  FROM unnest($2::text[], $3::bytea[], $4::bigint[]) AS u(key, record, keep_until)
ON CONFLICT (stream_id, key) DO UPDATE SET record = excluded.record, keep_until = excluded.keep_until
"""
_ARCHIVE_HEAD = "SELECT token FROM streams WHERE stream_id = $1 FOR SHARE"
_ARCHIVE_GET = "SELECT key, record FROM record_archive WHERE stream_id = $1 AND key = ANY($2::text[])"

# A slice at a time, by ctid (the table's key is two columns). A row a put replaced meanwhile has
# moved to a new ctid and is left alone.
_ARCHIVE_FORGET = """
DELETE FROM record_archive
 WHERE ctid = ANY (ARRAY(SELECT ctid FROM record_archive WHERE keep_until < $1 LIMIT $2))
   AND keep_until < $1
"""

_Records = list[tuple[Any, ...]]  # the events' rows: (stream_id, version, event_type, data)
_Heads = tuple[list[Any], ...]  # the head moves, by column: stream ids, expected, new versions, tokens
_Inbox = list[tuple[str, str, str]]  # the inbox rows: (consumer, message_id, stream_id)
_Outcome = tuple[list[str], dict[str, tuple[int, int]]]  # streams left behind, their (version, token)


async def _heads_of(conn: asyncpg.Connection, streams: list[str]) -> dict[str, tuple[int, int]]:
    rows = await conn.fetch("SELECT stream_id, version, token FROM streams WHERE stream_id = ANY($1)", streams)
    return {r["stream_id"]: (r["version"], r["token"]) for r in rows}


async def _record_inbox(conn: asyncpg.Connection, rows: _Inbox) -> None:
    if rows:
        await conn.execute(
            "INSERT INTO processed_messages (consumer, message_id, stream_id) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
            *(list(column) for column in zip(*rows, strict=True)),
        )


TRANSIENT_DB_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.UniqueViolationError,  # a stale writer raced a version; the entity is rebuilt
    ConnectionError,
    OSError,
    TimeoutError,
)


class PostgresEventStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        writer_pool: asyncpg.Pool | None = None,
        one_statement_max: int = ONE_STATEMENT_MAX,
        one_statement_streams_max: int = ONE_STATEMENT_STREAMS_MAX,
    ) -> None:
        """`pool` serves reads and claims; `writer_pool` (see pg_pool.create_writer_pool), if given,
        serves group commits. A group of at most `one_statement_max` events over at most
        `one_statement_streams_max` streams is appended in one statement (0: every group is copied)."""
        self.pool = pool
        self.writers = writer_pool or pool
        self.one_statement_max = one_statement_max
        self.one_statement_streams_max = one_statement_streams_max

    async def claim(self, stream_id: str, token: int, owner: str) -> Claim:
        try:
            version = await self.pool.fetchval(_CLAIM, stream_id, token, owner)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"claiming {stream_id}: {exc}") from exc
        if version is None:
            newer = await self.current_token(stream_id)
            raise OwnershipLost(f"{stream_id} is owned with token {newer} > {token}")
        return Claim(stream_id, int(version))

    async def current_token(self, stream_id: str) -> int:
        token = await self.pool.fetchval("SELECT token FROM streams WHERE stream_id = $1", stream_id)
        return int(token or 0)

    async def append(self, appends: Sequence[StreamAppend], turn: Turn | None = None) -> AppendResult:
        if not appends:
            return AppendResult()
        check_one_append_per_stream(appends)
        ids, expected, new_versions, tokens = [], [], [], []
        for item in appends:
            ids.append(item.stream_id)
            expected.append(item.expected_version)
            new_versions.append(item.expected_version + len(item.events))
            tokens.append(item.token)
        records = [
            (item.stream_id, version, event.event_type, event.data)
            for item in appends
            for version, event in enumerate(item.events, start=item.expected_version + 1)
        ]
        heads = (ids, expected, new_versions, tokens)
        inbox = [(consumer, message, item.stream_id) for item in appends for consumer, message in item.inbox]
        try:
            try:
                small = len(records) <= self.one_statement_max and len(ids) <= self.one_statement_streams_max
                shape = self._in_one_statement if small else self._copy_then_move
                left, recorded = await shape(records, heads, inbox, turn or Turn())
            except asyncpg.exceptions.UniqueViolationError:
                # A version is taken already: another writer raced us (an ownership change). Redo it
                # the careful way, which copies only the streams whose heads moved.
                left, recorded = await self._move_then_copy(records, heads, inbox)
            finally:
                if turn is not None:
                    turn.finish()
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"append to {len(ids)} streams failed: {exc}") from exc
        if not left:
            return AppendResult()
        by_stream = {item.stream_id: item for item in appends}
        fenced, conflicts = set(), set()
        for stream in left:
            head = recorded.get(stream)
            if head is not None and head[1] > by_stream[stream].token:
                fenced.add(stream)
            else:
                conflicts.add(stream)
        return AppendResult(frozenset(fenced), frozenset(conflicts))

    async def _in_one_statement(self, records: _Records, heads: _Heads, inbox: _Inbox, turn: Turn) -> _Outcome:
        """The small shape: one statement outside any transaction block, so it commits on its own."""
        columns = [list(column) for column in zip(*records, strict=True)] if records else [[], [], [], []]
        messages = [list(column) for column in zip(*inbox, strict=True)] if inbox else [[], [], []]
        async with turn, self.writers.acquire() as conn:
            rows = await conn.fetch(_APPEND_IN_ONE, *heads, *columns, *messages)
        moved = {r["stream_id"] for r in rows if r["moved"]}
        left = [s for s in heads[0] if s not in moved]
        return left, {r["stream_id"]: (r["version"], r["token"]) for r in rows if not r["moved"]}

    async def _copy_then_move(self, records: _Records, heads: _Heads, inbox: _Inbox, turn: Turn) -> _Outcome:
        async with self.writers.acquire() as conn, conn.transaction():
            if records:
                await conn.copy_records_to_table("events", records=records, columns=_EVENT_COLUMNS)
            async with turn:
                moved = {r[0] for r in await conn.fetch(_MOVE_HEADS, *heads)}
            left = [s for s in heads[0] if s not in moved]
            await _record_inbox(conn, [row for row in inbox if row[2] in moved])
            if not left:
                return [], {}
            await conn.execute(_UNDO_EVENTS, left)
            return left, await _heads_of(conn, left)

    async def _move_then_copy(self, records: _Records, heads: _Heads, inbox: _Inbox) -> _Outcome:
        async with self.writers.acquire() as conn, conn.transaction():
            moved = {r[0] for r in await conn.fetch(_MOVE_HEADS, *heads)}
            kept = [r for r in records if r[0] in moved]
            if kept:
                await conn.copy_records_to_table("events", records=kept, columns=_EVENT_COLUMNS)
            await _record_inbox(conn, [row for row in inbox if row[2] in moved])
            left = [s for s in heads[0] if s not in moved]
            return left, (await _heads_of(conn, left) if left else {})

    async def processed(self, consumer: str, message_ids: Sequence[str]) -> set[str]:
        if not message_ids:
            return set()
        try:
            rows = await self.pool.fetch(
                "SELECT message_id FROM processed_messages WHERE consumer = $1 AND message_id = ANY($2)",
                consumer,
                list(message_ids),
            )
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"reading the inbox of {consumer}: {exc}") from exc
        return {r["message_id"] for r in rows}

    async def load(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        try:
            rows = await self.pool.fetch(
                "SELECT version, event_type, data, position FROM events "
                "WHERE stream_id = $1 AND version > $2 ORDER BY version",
                stream_id,
                after_version,
            )
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"loading {stream_id}: {exc}") from exc
        return [RecordedEvent(stream_id, r["version"], r["event_type"], r["data"], r["position"]) for r in rows]

    async def load_streams(self, stream_ids: Sequence[str]) -> list[RecordedEvent]:
        """Every event of these streams, by stream then version (for audits and benchmarks)."""
        try:
            rows = await self.pool.fetch(
                "SELECT stream_id, version, event_type, data, position FROM events "
                "WHERE stream_id = ANY($1) ORDER BY stream_id, version",
                list(stream_ids),
            )
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"loading {len(stream_ids)} streams: {exc}") from exc
        return [RecordedEvent(r["stream_id"], r["version"], r["event_type"], r["data"], r["position"]) for r in rows]

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        try:
            row = await self.pool.fetchrow("SELECT version, state FROM snapshots WHERE stream_id = $1", stream_id)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"loading the snapshot of {stream_id}: {exc}") from exc
        return Snapshot(stream_id, row["version"], row["state"]) if row else None

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self.pool.execute(_SAVE_SNAPSHOT, snapshot.stream_id, snapshot.version, snapshot.state)

    async def save_snapshot_in_parts(self, stream_id: str, version: int, parts: Sequence[bytes]) -> None:
        """One transaction: the stream's snapshot lock, the older snapshot deleted (or nothing to
        do: one as new is stored), then COPY of the new row, a part per message with the event
        loop free between them. The lock orders two savers of one stream, so the newest still
        wins (a COPY cannot update in place)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(_LOCK_SNAPSHOT, stream_id)
                if await conn.fetchval(_MAKE_ROOM_FOR_SNAPSHOT, stream_id, version):
                    return
                source = snapshot_copy_rows(stream_id, version, parts)
                await conn.copy_to_table("snapshots", source=source, columns=_SNAPSHOT_COLUMNS, format="binary")
        except asyncpg.UniqueViolationError:
            # A snapshot saved whole (that takes no lock) got in meanwhile. Only on a race of two
            # owners or of the first snapshots; whichever stays, activation replays what follows it.
            return
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"saving the snapshot of {stream_id}: {exc}") from exc

    async def put(self, stream_id: str, token: int, rows: Sequence[ArchivedRecord]) -> None:
        if not rows:
            return
        # One row per key (the last wins, as a later put would), in key order: ON CONFLICT cannot
        # touch a row twice in one statement, and two puts lock their keys in the same order.
        latest = {row.key: row for row in rows}
        ordered = [latest[key] for key in sorted(latest)]
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    _ARCHIVE_INSERT,
                    stream_id,
                    [row.key for row in ordered],
                    [row.record for row in ordered],
                    [row.keep_until for row in ordered],
                )
                recorded = await conn.fetchval(_ARCHIVE_HEAD, stream_id)
                if recorded != token:
                    raise OwnershipLost(f"{stream_id} is owned with token {recorded or 0}, not {token}")
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"archiving {len(ordered)} records of {stream_id}: {exc}") from exc

    async def get(self, stream_id: str, keys: Sequence[str]) -> dict[str, bytes]:
        if not keys:
            return {}
        try:
            rows = await self.pool.fetch(_ARCHIVE_GET, stream_id, list(keys))
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"reading {len(keys)} archived records of {stream_id}: {exc}") from exc
        return {r["key"]: r["record"] for r in rows}

    async def forget(self, before_ms: int, limit: int = 10_000) -> int:
        if limit <= 0:
            return 0
        try:
            status = await self.pool.execute(_ARCHIVE_FORGET, before_ms, limit)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"forgetting archived records kept until before {before_ms}: {exc}") from exc
        return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"
