"""The bookings projection against the real PostgreSQL: rows from real appends, exactly once across
crashes and concurrent runners, the supervisor's queries, the wake-up on NOTIFY, and the API's
repository over it.

Every expected table is the pure fold of the same log (engine/projections/bookings.py), so these
tests check the SQL against the reference semantics, not against a second copy of them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import date

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings

from api.app import create_app
from api.auth import issue_token
from api.dependencies import Postgres
from engine.adapters.pg_bookings import (
    MAX_LIMIT,
    BookingsProjection,
    apply_changes,
    customer_bookings,
    get_booking,
    overdue_holds,
    projection_lag,
    undecided_holds,
    undelivered_decisions,
    unrefunded,
)
from engine.adapters.pg_event_store import PostgresEventStore
from engine.adapters.pg_log import PostgresLogReader
from engine.adapters.pg_pool import create_pool
from engine.config import Settings
from engine.domain import codec
from engine.domain.errors import StoreUnavailable
from engine.domain.events import (
    BookingCancelled,
    BookingConfirmed,
    CarHeld,
    FundsDeposited,
    HoldExpired,
    HoldReleased,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    TicketsHeld,
)
from engine.following import Backoff
from engine.log import START, LogCheckpoint, LoggedEvent
from engine.ports import NewEvent, OverdueHold, StreamAppend, UndecidedHold, UndeliveredDecision, Unrefunded
from engine.projections.bookings import PROJECTION_NAME, Booking, Change, InsertHold, fold, plan
from tests.contract.log_reader import read_all
from tests.projection_changes import changes
from tests.unit.api.asgi_client import AsgiClient
from tests.unit.test_bookings_projection import logged

AT = 1_800_000_000_000
TTL = 60_000


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, 4)
    # Autovacuum's ANALYZE takes a transaction id and (rightly) holds log readers back while it
    # runs; off, so that a read right after a commit sees it (as in test_pg_log.py).
    await pool.execute("ALTER TABLE events SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)")
    yield pool
    await pool.close()


async def write(pool: asyncpg.Pool, stream: str, *events: object) -> None:
    """Append `events` to `stream` through the real event store, as one group commit."""
    store = PostgresEventStore(pool)
    version = (await store.claim(stream, 1, "test")).version
    result = await store.append(
        [StreamAppend(stream, version, 1, [NewEvent(*codec.encode_named_record(e)) for e in events])]
    )
    assert result.failed == frozenset()


async def table(pool: asyncpg.Pool) -> dict[str, Booking]:
    rows = await pool.fetch("SELECT * FROM bookings")
    return {r["hold_id"]: Booking(**dict(r)) for r in rows}


async def reference(pool: asyncpg.Pool) -> dict[str, Booking]:
    """What the table must hold: the pure fold of the whole log."""
    return fold(plan(await read_all(PostgresLogReader(pool))))


async def drain(projection: BookingsProjection, limit: int | None = None) -> None:
    while await projection.run_once(limit):
        pass


def tickets(hold_id: str, event_id: str = "e1", customer: str = "alice", at: int = AT, n: int = 2) -> TicketsHeld:
    return TicketsHeld(event_id, hold_id, customer, (("std", n),), 5000 * n, TTL, at + TTL, at)


def car(hold_id: str, car_id: str = "c1", customer: str = "bob", at: int = AT) -> CarHeld:
    return CarHeld(car_id, hold_id, customer, date(2027, 1, 20), date(2027, 1, 23), 30_000, TTL, at + TTL, at)


def paid(hold_id: str, at: int, stream: str = "event/e1", amount: int = 10_000) -> PaymentSucceeded:
    return PaymentSucceeded(hold_id, stream, "alice", amount, at)


def failed(hold_id: str, at: int, stream: str = "event/e1") -> PaymentFailed:
    return PaymentFailed(hold_id, stream, "alice", 10_000, "insufficient funds", at)


async def a_story(pool: asyncpg.Pool) -> None:
    """A log with every kind of booking event, interleaved over streams and group commits."""
    await write(pool, "wallet/alice", FundsDeposited("alice", "d1", 100_000, AT - 10))
    await write(pool, "event/e1", tickets("h-cancel"), tickets("h-fail", at=AT + 1))
    await write(pool, "car/c1", car("h-car"))
    await write(pool, "payment/h-cancel", paid("h-cancel", AT + 100))
    await write(pool, "payment/h-fail", failed("h-fail", AT + 150))
    await write(
        pool,
        "event/e1",
        BookingConfirmed("e1", "h-cancel", "pay", AT + 200),
        HoldReleased("e1", "h-fail", "payment failed", AT + 250),
    )
    await write(pool, "car/c1", HoldExpired("c1", "h-car", AT + TTL))
    await write(pool, "event/e1", BookingCancelled("e1", "h-cancel", "cancelled by customer", AT + 5000))
    await write(
        pool, "payment/h-cancel", PaymentRefunded("h-cancel", "event/e1", "alice", 10_000, "cancelled", AT + 6000)
    )
    await write(pool, "event/e2", tickets("h-open", "e2", customer="carol", at=AT + 7000, n=1))


# ---- rows ------------------------------------------------------------------------------------
async def test_the_table_is_the_fold_of_the_log(pool: asyncpg.Pool) -> None:
    await a_story(pool)
    projection = BookingsProjection(pool, PostgresLogReader(pool))
    await drain(projection)
    rows = await table(pool)
    assert rows == await reference(pool)
    assert set(rows) == {"h-cancel", "h-fail", "h-car", "h-open"}

    cancelled = rows["h-cancel"]
    assert (cancelled.status, cancelled.reason, cancelled.terminal_version) == ("CANCELLED", "cancelled by customer", 5)
    assert (cancelled.confirmed_at, cancelled.cancelled_at, cancelled.hold_version) == (AT + 200, AT + 5000, 1)
    assert (cancelled.payment_status, cancelled.payment_reason, cancelled.refunded_at) == (
        "REFUNDED",
        "cancelled",
        AT + 6000,
    )
    assert (cancelled.payment_decided_at, cancelled.payment_version) == (AT + 100, 1)
    assert cancelled.updated_at is not None

    fail = rows["h-fail"]
    assert (fail.status, fail.reason, fail.payment_status, fail.payment_reason) == (
        "RELEASED",
        "payment failed",
        "FAILED",
        "insufficient funds",
    )
    expired = rows["h-car"]
    assert (expired.kind, expired.quantity, expired.status, expired.expired_at, expired.terminal_version) == (
        "car",
        3,
        "EXPIRED",
        AT + TTL,
        2,
    )
    assert rows["h-open"].status == "HELD"
    assert await get_booking(pool, "h-open") == rows["h-open"]
    assert await get_booking(pool, "nope") is None
    assert [b.hold_id for b in await customer_bookings(pool, "alice", 10)] == ["h-fail", "h-cancel"]
    assert [b.hold_id for b in await customer_bookings(pool, "alice", 1)] == ["h-fail"]
    assert await customer_bookings(pool, "nobody", 10) == []


async def test_the_checkpoint_moves_with_the_rows(pool: asyncpg.Pool) -> None:
    await a_story(pool)
    reader = PostgresLogReader(pool)
    events = await read_all(reader)
    projection = BookingsProjection(pool, reader)
    assert await projection.run_once(4) == 4
    assert await reader.load_checkpoint(PROJECTION_NAME) == events[3].checkpoint
    assert await projection_lag(pool) == len(events) - 4
    await drain(projection)
    assert await reader.load_checkpoint(PROJECTION_NAME) == events[-1].checkpoint
    assert await projection_lag(pool) == 0
    assert projection.applied == len(events)
    assert await projection.run_once() == 0


# ---- exactly once ----------------------------------------------------------------------------
async def test_a_new_instance_after_a_crash_resumes_where_the_last_batch_committed(pool: asyncpg.Pool) -> None:
    await a_story(pool)
    total = len(await read_all(PostgresLogReader(pool)))
    first = BookingsProjection(pool, PostgresLogReader(pool))
    assert await first.run_once(5) == 5
    partial = await table(pool)
    assert partial == fold(plan((await read_all(PostgresLogReader(pool)))[:5]))
    del first  # the crash: nothing of it survives but what it committed

    second = BookingsProjection(pool, PostgresLogReader(pool))
    await drain(second, 2)
    assert second.applied == total - 5, "nothing applied twice, nothing skipped"
    resumed = await table(pool)
    assert resumed == await reference(pool)

    # A projection rebuilt from scratch over the whole log gives the same table.
    await pool.execute("TRUNCATE bookings")
    await pool.execute("DELETE FROM log_checkpoints WHERE name = $1", PROJECTION_NAME)
    rebuilt = BookingsProjection(pool, PostgresLogReader(pool))
    await drain(rebuilt)
    assert rebuilt.applied == total
    assert await table(pool) == resumed


class CrashesMidBatch(BookingsProjection):
    """Dies after applying its batch's rows, before its transaction commits."""

    async def _apply(self, conn: asyncpg.Connection, changes: Sequence[Change]) -> None:
        await super()._apply(conn, changes)
        raise RuntimeError("power cut")


async def test_a_crash_inside_the_transaction_applies_neither_rows_nor_checkpoint(pool: asyncpg.Pool) -> None:
    await a_story(pool)
    reader = PostgresLogReader(pool)
    done = BookingsProjection(pool, reader)
    assert await done.run_once(3) == 3
    before = await table(pool)
    checkpoint = await reader.load_checkpoint(PROJECTION_NAME)

    with pytest.raises(RuntimeError, match="power cut"):
        await CrashesMidBatch(pool, reader).run_once(4)
    assert await table(pool) == before
    assert await reader.load_checkpoint(PROJECTION_NAME) == checkpoint

    after = BookingsProjection(pool, reader)
    await drain(after)
    assert await table(pool) == await reference(pool)
    assert done.applied + after.applied == len(await read_all(reader))


async def test_two_runners_at_once_apply_each_event_once(pool: asyncpg.Pool) -> None:
    for i in range(8):
        await write(pool, f"event/s{i}", *(tickets(f"h{i}-{j}", f"s{i}", at=AT + j) for j in range(5)))
    total = 40
    a = BookingsProjection(pool, PostgresLogReader(pool), batch=3)
    b = BookingsProjection(pool, PostgresLogReader(pool), batch=3)
    # Both read the same batch from the same checkpoint, and only one may apply it: the other finds
    # the checkpoint moved and returns 0. Keep going until neither has anything left.
    rounds: list[list[int]] = []
    while True:
        rounds.append(list(await asyncio.gather(a.run_once(), b.run_once())))
        if rounds[-1] == [0, 0]:
            break
    assert any(0 in r and sum(r) > 0 for r in rounds), f"no race was lost: {rounds}"
    assert a.applied + b.applied == total
    assert len(await table(pool)) == total
    assert await table(pool) == await reference(pool)


async def test_a_runner_whose_checkpoint_was_moved_reloads_it(pool: asyncpg.Pool) -> None:
    await a_story(pool)
    stale = BookingsProjection(pool, PostgresLogReader(pool))
    assert await stale.run_once(1) == 1
    other = BookingsProjection(pool, PostgresLogReader(pool))
    await drain(other)
    assert await stale.run_once() == 0, "its batch was applied by the other runner"
    assert stale.checkpoint is None
    assert await stale.run_once() == 0, "reloaded: nothing left"
    assert stale.applied == 1


# ---- the supervisor's queries ----------------------------------------------------------------
async def supervised(pool: asyncpg.Pool) -> None:
    """One booking per situation the supervisor looks for, and some it must not see."""
    e1 = "event/e1"
    await write(
        pool,
        e1,
        tickets("undecided-old", at=AT),  # v1
        tickets("undecided-new", at=AT + 10_000),  # v2
        tickets("paid-held", at=AT + 1),  # v3
        tickets("failed-held", at=AT + 2),  # v4
        tickets("paid-confirmed", at=AT + 3),  # v5
        tickets("paid-expired", at=AT + 4),  # v6
        tickets("paid-refunded", at=AT + 5),  # v7
        tickets("failed-released", at=AT + 6),  # v8
    )
    await write(pool, "car/c1", car("car-undecided", at=AT + 7))  # v1
    await write(pool, "payment/paid-held", paid("paid-held", AT + 100))
    await write(pool, "payment/failed-held", failed("failed-held", AT + 300))
    await write(pool, "payment/paid-confirmed", paid("paid-confirmed", AT + 100))
    await write(pool, "payment/paid-expired", paid("paid-expired", AT + 100))
    await write(pool, "payment/paid-refunded", paid("paid-refunded", AT + 100))
    await write(pool, "payment/failed-released", failed("failed-released", AT + 100))
    await write(
        pool,
        e1,
        BookingConfirmed("e1", "paid-confirmed", "pay", AT + 200),  # v9
        HoldExpired("e1", "paid-expired", AT + 4 + TTL),  # v10
        HoldReleased("e1", "paid-refunded", "released by customer", AT + 500),  # v11
        HoldReleased("e1", "failed-released", "payment failed", AT + 400),  # v12
    )
    await write(
        pool, "payment/paid-refunded", PaymentRefunded("paid-refunded", e1, "alice", 10_000, "released", AT + 600)
    )
    await drain(BookingsProjection(pool, PostgresLogReader(pool)))


async def test_undecided_holds(pool: asyncpg.Pool) -> None:
    await supervised(pool)
    assert await undecided_holds(pool, AT + 10_001, 100) == [
        UndecidedHold("undecided-old", "event/e1", 1, AT),
        UndecidedHold("car-undecided", "car/c1", 1, AT + 7),
        UndecidedHold("undecided-new", "event/e1", 2, AT + 10_000),
    ]
    assert [h.hold_id for h in await undecided_holds(pool, AT + 10_000, 100)] == ["undecided-old", "car-undecided"]
    assert [h.hold_id for h in await undecided_holds(pool, AT + 10_000, 1)] == ["undecided-old"]
    assert await undecided_holds(pool, AT, 100) == [], "the cutoff is strict"


async def test_undelivered_decisions(pool: asyncpg.Pool) -> None:
    await supervised(pool)
    assert await undelivered_decisions(pool, AT + 301, 100) == [
        UndeliveredDecision("paid-held", "SUCCEEDED", AT + 100, "event/e1"),
        UndeliveredDecision("failed-held", "FAILED", AT + 300, "event/e1", "insufficient funds"),
    ]
    assert [d.hold_id for d in await undelivered_decisions(pool, AT + 300, 100)] == ["paid-held"]
    assert await undelivered_decisions(pool, AT + 100, 100) == []


async def test_unrefunded(pool: asyncpg.Pool) -> None:
    await supervised(pool)
    expired_at = AT + 4 + TTL
    assert await unrefunded(pool, expired_at + 1, 100) == [
        Unrefunded("paid-expired", "event/e1", 10, "EXPIRED", expired_at)
    ]
    assert await unrefunded(pool, expired_at, 100) == []
    # Refunding it takes it off the list.
    await write(pool, "payment/paid-expired", PaymentRefunded("paid-expired", "event/e1", "alice", 10_000, "x", AT))
    await drain(BookingsProjection(pool, PostgresLogReader(pool)))
    assert await unrefunded(pool, expired_at + 1, 100) == []


async def test_a_cancelled_paid_booking_is_unrefunded_until_refunded(pool: asyncpg.Pool) -> None:
    await write(pool, "event/e9", tickets("h", "e9"))
    await write(pool, "payment/h", paid("h", AT + 10, "event/e9"))
    await write(
        pool, "event/e9", BookingConfirmed("e9", "h", "pay", AT + 20), BookingCancelled("e9", "h", "c", AT + 30)
    )
    await drain(BookingsProjection(pool, PostgresLogReader(pool)))
    assert await unrefunded(pool, AT + 31, 10) == [Unrefunded("h", "event/e9", 3, "CANCELLED", AT + 30)]


async def test_overdue_holds(pool: asyncpg.Pool) -> None:
    await supervised(pool)
    grace = 2000
    # Still HELD: undecided-old (expires AT+TTL), paid-held (+1), failed-held (+2), car (+7), undecided-new (+10 s).
    overdue = await overdue_holds(pool, AT + TTL + 8 + grace, grace, 100)
    assert overdue == [
        OverdueHold("event", "e1", "undecided-old", AT + TTL),
        OverdueHold("event", "e1", "paid-held", AT + 1 + TTL),
        OverdueHold("event", "e1", "failed-held", AT + 2 + TTL),
        OverdueHold("car", "c1", "car-undecided", AT + 7 + TTL),
    ]
    assert await overdue_holds(pool, AT + TTL + grace, grace, 100) == [], "expires_at + grace < now, strictly"
    assert len(await overdue_holds(pool, AT + TTL + 10_000 + grace + 1, grace, 100)) == 5
    assert len(await overdue_holds(pool, AT + TTL + 10_000 + grace + 1, grace, 2)) == 2


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1])
async def test_queries_refuse_unbounded_limits(pool: asyncpg.Pool, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        await undecided_holds(pool, AT, limit)
    with pytest.raises(ValueError, match="limit"):
        await customer_bookings(pool, "alice", limit)


async def test_the_supervisor_queries_use_their_indexes(pool: asyncpg.Pool) -> None:
    """The partial indexes match only if the queries repeat their predicates verbatim."""
    await supervised(pool)
    await pool.execute("ANALYZE bookings")
    from engine.adapters import pg_bookings

    async with pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        try:
            for sql, index in (
                (pg_bookings._UNDECIDED, "bookings_undecided_idx"),
                (pg_bookings._UNDELIVERED, "bookings_undelivered_idx"),
                (pg_bookings._UNREFUNDED, "bookings_unrefunded_idx"),
                (pg_bookings._OVERDUE, "bookings_held_expiry_idx"),
            ):
                plan_text = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, AT, 10))
                assert index in plan_text, plan_text
        finally:
            await conn.execute("RESET enable_seqscan")


# ---- the loop --------------------------------------------------------------------------------
async def wait_for(what: str, check: Callable[[], Awaitable[bool]], within: float = 5.0) -> float:
    """Poll `check` until it answers True; returns the seconds it took."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_a_running_projection_wakes_on_notify(pool: asyncpg.Pool) -> None:
    projection = BookingsProjection(pool, PostgresLogReader(pool), poll_s=30.0)  # only NOTIFY wakes it
    stop = asyncio.Event()
    task = asyncio.create_task(projection.run(stop))
    try:

        async def loaded() -> bool:
            return projection.checkpoint is not None  # listening starts before the first batch

        await wait_for("first batch", loaded)
        await asyncio.sleep(0.1)
        await write(pool, "event/e1", tickets("h-live"))

        async def projected() -> bool:
            return await get_booking(pool, "h-live") is not None

        assert await wait_for("the new hold", projected, within=3.0) < 1.5
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


class FlakyReader(PostgresLogReader):
    def __init__(self, pool: asyncpg.Pool, failures: int) -> None:
        super().__init__(pool)
        self.failures = failures

    async def read_after(self, checkpoint: LogCheckpoint, limit: int) -> list[LoggedEvent]:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("the database is restarting")
        return await super().read_after(checkpoint, limit)


async def test_the_loop_backs_off_through_database_errors(pool: asyncpg.Pool) -> None:
    await write(pool, "event/e1", tickets("h-late"))
    reader = FlakyReader(pool, failures=3)
    projection = BookingsProjection(pool, reader, poll_s=0.05, backoff=Backoff(first=0.01, cap=0.02))
    stop = asyncio.Event()
    task = asyncio.create_task(projection.run(stop))
    try:

        async def projected() -> bool:
            return await get_booking(pool, "h-late") is not None

        await wait_for("the hold after the outage", projected)
        assert reader.failures == 0
        assert not task.done(), "the loop survives the outage"
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert await PostgresLogReader(pool).load_checkpoint(PROJECTION_NAME) != START


# ---- the API's repository --------------------------------------------------------------------
async def test_the_api_reads_the_projection(pool: asyncpg.Pool, database_url: str) -> None:
    await a_story(pool)
    await drain(BookingsProjection(pool, PostgresLogReader(pool)))
    settings = Settings(jwt_secret="integration-secret-0123456789abcdef")
    postgres = Postgres(database_url, 2)
    http = AsgiClient(create_app(settings, dependencies=[postgres]))
    alice = {"Authorization": f"Bearer {issue_token(settings, 'alice')}"}
    try:
        reply = await http.get("/bookings/h-cancel", headers=alice)
        assert reply.status == 200, reply.body
        body = reply.json()
        assert (body["status"], body["reason"], body["amount"], body["quantity"]) == (
            "CANCELLED",
            "cancelled by customer",
            10_000,
            2,
        )
        assert [t["status"] for t in body["transitions"]] == ["HELD", "CONFIRMED", "CANCELLED"]
        assert body["payment"]["status"] == "REFUNDED"
        listed = (await http.get("/customers/alice/bookings", headers=alice)).json()
        assert [b["hold_id"] for b in listed["bookings"]] == ["h-fail", "h-cancel"]
        assert (await http.get(f"/bookings/{uuid.uuid4()}", headers=alice)).status == 404
        carol = {"Authorization": f"Bearer {issue_token(settings, 'carol')}"}
        assert (await http.get("/bookings/h-cancel", headers=carol)).status == 404  # not hers: as if absent
    finally:
        await postgres.close()


# ---- the SQL against the Python ------------------------------------------------------------------
async def _sql_of(database_url: str, before: list[Change], batch: list[Change]) -> dict[str, Booking]:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("TRUNCATE bookings")
        for changes in (before, batch):
            async with conn.transaction():
                await apply_changes(conn, changes)
        rows = await conn.fetch("SELECT * FROM bookings")
        return {r["hold_id"]: Booking(**dict(r)) for r in rows}
    finally:
        await conn.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=changes, batch=changes)
def test_the_sql_of_a_batch_does_what_the_python_does(
    database_url: str, before: list[Change], batch: list[Change]
) -> None:
    """Random changes written in two batches (the second over the rows of the first) by the
    set-based statements give the rows the pure `fold` gives."""
    existing = fold(before)
    batch = [c for c in batch if not (isinstance(c, InsertHold) and c.booking.hold_id in existing)]
    assert asyncio.run(_sql_of(database_url, before, batch)) == fold(batch, dict(existing))


async def test_a_booking_paid_and_confirmed_in_a_later_batch_is_updated_once(database_url: str) -> None:
    """Its payment and its confirmation are one UPDATE of its row: one new row version, so its
    indexes are written once, not twice (the batch's rows counted by the transaction's own
    statistics)."""
    hold = plan([logged("event/e1", 2, tickets("h1"), 1)])
    later = plan(
        [
            logged("wallet/alice", 5, paid("h1", AT + 100), 2),
            logged("event/e1", 3, BookingConfirmed("e1", "h1", "h1", AT + 200), 3),
        ]
    )
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("TRUNCATE bookings")
        async with conn.transaction():
            await apply_changes(conn, hold)
        async with conn.transaction():
            await apply_changes(conn, later)
            updated = await conn.fetchval("SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'bookings'")
        row = await conn.fetchrow("SELECT status, payment_status, payment_stream FROM bookings")
    finally:
        await conn.close()
    assert updated == 1
    assert tuple(row) == ("CONFIRMED", "SUCCEEDED", "wallet/alice")
