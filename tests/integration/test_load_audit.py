"""The load test's auditor against a real event store: a consistent history passes, and each
seeded violation (a hold nobody acknowledged, a tier over its quantity, a double charge, an
overlapping rental, a read model that drifted) is reported by its own check.

The events are written through the real PostgreSQL event store, as a shard would; the bookings
read model is brought up to date by the real projection before each audit.
"""

from __future__ import annotations

from datetime import date

import asyncpg

from engine.adapters.pg_bookings import BookingsProjection
from engine.adapters.pg_ledger import LedgerProjection
from engine.domain.commands import TierSpec
from engine.domain.events import (
    BookingConfirmed,
    CarHeld,
    CarRegistered,
    EventCreated,
    FundsDeposited,
    PaymentSucceeded,
    TicketsHeld,
    WalletCharged,
)
from loadtest.audit_rules import (
    ACKNOWLEDGED,
    CHARGES,
    READ_MODEL,
    RENTALS,
    STATEMENTS,
    TIERS,
    UNACKNOWLEDGED,
    ClientHold,
    Verdict,
)
from loadtest.store_audit import audit_store
from tests.integration.test_bookings_projection import pool, write

__all__ = ["pool"]  # the fixture: a fresh database with autovacuum off (log readers see commits at once)

SHOW, CAR = "event/show", "car/van"
EXPIRES = 2_000_000_000_000  # far in the future: nothing is overdue


def held(hold_id: str, tickets: int, customer: str = "ann") -> TicketsHeld:
    return TicketsHeld("show", hold_id, customer, (("std", tickets),), tickets * 100, 600_000, EXPIRES, 1)


def acked(hold_id: str, amount: int, customer: str = "ann", entity: str = SHOW) -> ClientHold:
    return ClientHold(customer, entity, f"key-{hold_id}", hold_id, 201, (hold_id,), amount, EXPIRES)


async def a_paid_booking(pool: asyncpg.Pool) -> list[ClientHold]:
    """ann deposits 10,000, holds 2 tickets of 5 (200), is charged, and the booking is confirmed."""
    await write(pool, SHOW, EventCreated("show", "Show", "Hall", "2027", (TierSpec("std", 100, 5),), 0, 0))
    await write(pool, "wallet/ann", FundsDeposited("ann", "d1", 10_000, 1))
    await write(pool, SHOW, held("h1", 2))
    await write(pool, "wallet/ann", WalletCharged("ann", "h1", 200, 2))
    await write(pool, "payment/h1", PaymentSucceeded("h1", SHOW, "ann", 200, 3))
    await write(pool, SHOW, BookingConfirmed("show", "h1", "payment:h1", 4))
    return [acked("h1", 200)]


async def audit(pool: asyncpg.Pool, clients: list[ClientHold], balances: dict[str, int] | None = None) -> Verdict:
    projection = BookingsProjection(pool)
    while await projection.run_once():
        pass
    ledger = LedgerProjection(pool)
    while await ledger.run_once():
        pass
    return await audit_store(pool, clients, {SHOW, CAR}, reported_balances=balances)


def failed(verdict: Verdict) -> set[str]:
    return {c.name for c in verdict.checks if not c.ok}


async def test_a_consistent_history_passes_every_check(pool: asyncpg.Pool) -> None:
    clients = await a_paid_booking(pool)
    verdict = await audit(pool, clients, balances={"ann": 9_800})
    assert verdict.ok, verdict.table()
    assert verdict.figures["holds stored"] == 1


async def test_a_hold_stored_that_nobody_acknowledged_is_reported(pool: asyncpg.Pool) -> None:
    clients = await a_paid_booking(pool)
    await write(pool, SHOW, held("phantom", 1, customer="bo"))
    verdict = await audit(pool, clients)
    assert failed(verdict) == {UNACKNOWLEDGED}
    assert "phantom" in verdict.check(UNACKNOWLEDGED).problems[0]


async def test_an_acknowledged_hold_missing_from_the_store_is_reported(pool: asyncpg.Pool) -> None:
    clients = await a_paid_booking(pool)
    verdict = await audit(pool, [*clients, acked("lost", 100)])
    assert failed(verdict) == {ACKNOWLEDGED}


async def test_a_tier_over_its_quantity_is_reported(pool: asyncpg.Pool) -> None:
    clients = await a_paid_booking(pool)
    await write(pool, SHOW, held("h2", 4))  # 2 + 4 of 5
    verdict = await audit(pool, [*clients, acked("h2", 400)])
    assert failed(verdict) == {TIERS}
    assert verdict.figures["oversold tickets"] == 1


async def test_a_double_charge_is_reported(pool: asyncpg.Pool) -> None:
    clients = await a_paid_booking(pool)
    await write(pool, "wallet/ann", PaymentSucceeded("h1", SHOW, "ann", 200, 5))  # the newer layout's charge, again
    verdict = await audit(pool, clients, balances={"ann": 9_800})
    assert CHARGES in failed(verdict)
    assert verdict.check(CHARGES).problems == ("wallet ann: saga h1 charged twice",)


async def test_an_overlapping_rental_is_reported(pool: asyncpg.Pool) -> None:
    clients = await a_paid_booking(pool)
    await write(pool, CAR, CarRegistered("van", "VW", "T6", "Oslo", 100, 1, 0, 0, 0))
    await write(pool, CAR, CarHeld("van", "r1", "ann", date(2027, 6, 1), date(2027, 6, 5), 400, 9, EXPIRES, 1))
    await write(pool, CAR, CarHeld("van", "r2", "bo", date(2027, 6, 4), date(2027, 6, 8), 400, 9, EXPIRES, 2))
    verdict = await audit(pool, [*clients, acked("r1", 400, "ann", CAR), acked("r2", 400, "bo", CAR)])
    assert RENTALS in failed(verdict)
    assert verdict.check(RENTALS).problems == ("car/van: r2 overlaps r1",)


async def test_a_read_model_that_differs_from_the_log_is_reported(pool: asyncpg.Pool) -> None:
    clients = await a_paid_booking(pool)
    await audit(pool, clients)
    await pool.execute("UPDATE bookings SET status = 'CANCELLED' WHERE hold_id = 'h1'")
    verdict = await audit(pool, clients)
    assert failed(verdict) == {READ_MODEL}


async def test_a_statement_that_differs_from_the_log_or_the_balance_is_reported(pool: asyncpg.Pool) -> None:
    clients = await a_paid_booking(pool)
    await audit(pool, clients)
    await pool.execute("UPDATE ledger_entries SET amount = amount - 1 WHERE wallet_id = 'ann' AND kind = 'charge'")
    verdict = await audit(pool, clients, balances={"ann": 9_800})
    assert failed(verdict) == {STATEMENTS}
    assert verdict.check(STATEMENTS).problems[0] == "wallet ann: the statement differs from the log"
