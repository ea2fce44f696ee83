"""The ledger projection against the real PostgreSQL: the table is the fold of the log, exactly
once across crashes and concurrent runners, reading only money events, and the statement of a
wallet pages back through it and adds up to the balance."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from engine.adapters.pg_ledger import LedgerProjection, statement
from engine.adapters.pg_log import PostgresLogReader
from engine.adapters.pg_pool import create_pool
from engine.domain import codec
from engine.domain.events import FundsDeposited, FundsWithdrawn, PaymentSucceeded, TicketsHeld
from engine.log import START
from engine.projections.ledger import EVENT_TYPES, PROJECTION_NAME, Entry, fold, plan
from tests.contract.log_reader import read_all
from tests.integration.test_bookings_projection import pool, write
from tests.wallet_histories import T, command, history

__all__ = ["pool"]  # the fixture: a fresh database with autovacuum off (log readers see commits at once)


async def table(pool: asyncpg.Pool) -> dict[str, list[Entry]]:
    rows = await pool.fetch("SELECT * FROM ledger_entries ORDER BY wallet_id, version")
    out: dict[str, list[Entry]] = {}
    for r in rows:
        out.setdefault(r["wallet_id"], []).append(Entry(**dict(r)))
    return out


async def reference(pool: asyncpg.Pool) -> dict[str, list[Entry]]:
    return fold(plan(await read_all(PostgresLogReader(pool))))


async def drain(projection: LedgerProjection, limit: int | None = None) -> None:
    while await projection.run_once(limit):
        pass


def held(hold_id: str) -> TicketsHeld:
    return TicketsHeld("e1", hold_id, "ann", (("std", 1),), 100, 60_000, T + 60_000, T)


async def a_story(pool: asyncpg.Pool) -> None:
    await write(pool, "wallet/ann", FundsDeposited("ann", "d1", 10_000, T, "topup", ""))
    await write(pool, "event/e1", *(held(f"h{i}") for i in range(20)))
    await write(pool, "wallet/ann", PaymentSucceeded("h1", "event/e1", "ann", 100, T + 1))
    await write(pool, "wallet/bob", FundsDeposited("bob", "d1", 500, T, "admin", "goodwill"))
    await write(pool, "event/e1", *(held(f"k{i}") for i in range(20)))
    await write(pool, "wallet/ann", FundsWithdrawn("ann", "x1", 900, T + 2))


async def test_the_table_is_the_fold_of_the_log_and_adds_up(pool: asyncpg.Pool) -> None:
    await a_story(pool)
    await drain(LedgerProjection(pool))
    rows = await table(pool)
    assert rows == await reference(pool)
    assert [(e.kind, e.amount, e.balance) for e in rows["ann"]] == [
        ("deposit", 10_000, 10_000),
        ("charge", -100, 9_900),
        ("withdrawal", -900, 9_000),
    ]
    assert rows["bob"][0].detail == "admin: goodwill"


def applied_metric() -> float:
    return REGISTRY.get_sample_value("rezerv_projection_applied_events_total", {"projection": PROJECTION_NAME}) or 0.0


async def test_other_events_never_leave_the_database_yet_the_checkpoint_passes_them(pool: asyncpg.Pool) -> None:
    await a_story(pool)
    metric_before = applied_metric()
    reader = PostgresLogReader(pool)
    everything = await read_all(reader)
    events, to, scanned = await reader.read_matching(START, 30, EVENT_TYPES)
    assert scanned == 30
    assert [e.event_type for e in events] == ["FundsDeposited", "PaymentSucceeded", "FundsDeposited"]
    assert to == everything[29].checkpoint, "the checkpoint of the last event scanned, a hold"
    projection = LedgerProjection(pool, reader)
    assert await projection.run_once(30) == 30
    assert await reader.load_checkpoint(PROJECTION_NAME) == everything[29].checkpoint
    await drain(projection, 7)
    assert await reader.load_checkpoint(PROJECTION_NAME) == everything[-1].checkpoint
    assert await projection.run_once() == 0
    assert projection.applied == 4
    assert applied_metric() - metric_before == 4, "/metrics counts the money events applied, as for every projection"


class CrashesMidBatch(LedgerProjection):
    async def run_once(self, limit: int | None = None) -> int:
        from engine.adapters import pg_ledger

        real = pg_ledger.write_entries

        async def then_die(conn: asyncpg.Connection, movements: list[object]) -> list[Entry]:
            await real(conn, movements)  # type: ignore[arg-type]
            raise RuntimeError("power cut")

        pg_ledger.write_entries = then_die  # type: ignore[assignment]
        try:
            return await super().run_once(limit)
        finally:
            pg_ledger.write_entries = real


async def test_a_crash_inside_the_transaction_applies_nothing_and_a_new_runner_applies_it_once(
    pool: asyncpg.Pool,
) -> None:
    await a_story(pool)
    with pytest.raises(RuntimeError, match="power cut"):
        await CrashesMidBatch(pool).run_once()
    assert await table(pool) == {}
    await drain(LedgerProjection(pool), 5)
    assert await table(pool) == await reference(pool)


async def test_two_runners_at_once_write_each_entry_once(pool: asyncpg.Pool) -> None:
    for i in range(10):
        await write(pool, f"wallet/w{i}", *(FundsDeposited(f"w{i}", f"d{j}", 10, T) for j in range(4)))
    a, b = LedgerProjection(pool, batch=3), LedgerProjection(pool, batch=3)
    while sum(await asyncio.gather(a.run_once(), b.run_once())):
        pass
    assert a.applied + b.applied == 40
    assert await table(pool) == await reference(pool)


async def test_the_statement_pages_back_newest_first(pool: asyncpg.Pool) -> None:
    await write(pool, "wallet/ann", *(FundsDeposited("ann", f"d{i}", i + 1, T + i) for i in range(7)))
    await drain(LedgerProjection(pool))
    first = await statement(pool, "ann", 2**31 - 1, 3)
    assert [e.version for e in first] == [7, 6, 5]
    second = await statement(pool, "ann", first[-1].version, 3)
    assert [e.version for e in second] == [4, 3, 2]
    assert [e.version for e in await statement(pool, "ann", 2, 3)] == [1]
    assert await statement(pool, "nobody", 2**31 - 1, 3) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(command, max_size=30), st.lists(command, max_size=30), st.integers(1, 9))
def test_statements_written_by_sql_add_up_to_every_wallets_balance(
    database_url: str, ann: list[object], bob: list[object], batch: int
) -> None:
    asyncio.run(_statements_add_up(database_url, ann, bob, batch))


async def _statements_add_up(database_url: str, ann: list[object], bob: list[object], batch: int) -> None:
    pool = await create_pool(database_url, 2)
    try:
        await pool.execute("TRUNCATE events, streams, ledger_entries; DELETE FROM log_checkpoints")
        wallets = {"ann": history(ann, "ann"), "bob": history(bob, "bob")}
        for name, h in wallets.items():
            for event in h.events:  # one commit per event, the two wallets interleaved in the log
                await write(pool, f"wallet/{name}", codec.decode_record(event.data))
        await drain(LedgerProjection(pool), batch)
        rows = await table(pool)
        assert rows == await reference(pool)
        for name, h in wallets.items():
            mine = rows.get(name, [])
            assert sum(e.amount for e in mine) == h.wallet.balance
            assert (mine[-1].balance if mine else 0) == h.wallet.balance
    finally:
        await pool.close()
