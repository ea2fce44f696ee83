"""The audit of a baseline run, from the baseline's own tables: the same rules as rezerv's
(loadtest/audit_rules.py), where they apply.

- holds: every 201 is a row of `bookings` (stored once, same amount), no row a client did not
  ask for or was refused, every key answered with the hold it derives;
- tiers: the booked tickets of every tier add up to at most its quantity, and `remaining` is
  exactly quantity minus booked (a counter that drifted from the bookings is a lost update);
- money: the `ledger` rows (deposits, charges, refunds) through the same ledger as rezerv's
  events (loadtest/ledger.py); each wallet's balance equals deposits - charges + refunds; every
  booking is charged once, its amount, to its customer.

Rentals, hold lifetimes and a read model do not exist in a baseline (a booking is confirmed in
the transaction that takes it, and is read from the table it was written to): those rows say so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import asyncpg

from loadtest.audit_rules import (
    CONFIRMED,
    LIFETIMES,
    READ_MODEL,
    RENTALS,
    TIERS,
    Check,
    ClientHold,
    StoredHold,
    Verdict,
    check_acknowledged,
    check_balances,
    check_charges,
    check_idempotency,
    check_paid,
    check_unacknowledged,
)
from loadtest.ledger import MoneyMove, fold_money


def _tier_problems(tiers: Sequence[asyncpg.Record], booked: dict[tuple[str, str], int]) -> tuple[list[str], int]:
    problems = []
    oversold = 0
    for t in tiers:
        taken = booked.get((t["event_id"], t["tier"]), 0)
        if taken > t["quantity"]:
            oversold += taken - t["quantity"]
            problems.append(f"event/{t['event_id']} tier {t['tier']}: {taken} booked of {t['quantity']}")
        if t["remaining"] != t["quantity"] - taken:
            problems.append(
                f"event/{t['event_id']} tier {t['tier']}: remaining {t['remaining']}, but quantity {t['quantity']} "
                f"- booked {taken} = {t['quantity'] - taken}"
            )
    return problems, oversold


async def audit_baseline(pool: asyncpg.Pool, clients: Sequence[ClientHold], entities: set[str], target: str) -> Verdict:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        bookings = await conn.fetch("SELECT * FROM bookings")
        tiers = await conn.fetch("SELECT * FROM tiers")
        ledger = await conn.fetch("SELECT customer_id, kind, ref, amount FROM ledger ORDER BY position")
        wallets = await conn.fetch("SELECT customer_id, balance FROM wallets")
    stored = [
        StoredHold(b["hold_id"], f"event/{b['event_id']}", b["customer_id"], b["amount"], b["expires_at"])
        for b in bookings
    ]
    booked: dict[tuple[str, str], int] = defaultdict(int)
    for b in bookings:
        for part in b["quantities"].split(","):
            tier, _, count = part.rpartition(":")
            booked[(b["event_id"], tier)] += int(count)
    tier_problems, oversold = _tier_problems(tiers, booked)
    money = fold_money(MoneyMove(r["customer_id"], r["kind"], r["ref"], r["amount"]) for r in ledger)
    status = {b["hold_id"]: b["status"] for b in bookings}
    not_confirmed = tuple(f"booking {h} is {s}" for h, s in status.items() if s != CONFIRMED)
    verdict = Verdict(
        target,
        [
            check_acknowledged(clients, stored),
            check_unacknowledged(clients, stored, entities),
            check_idempotency(clients, stored),
            Check(TIERS, len(tiers), tuple(tier_problems)),
            Check(RENTALS, 0, note="no rentals in a baseline"),
            Check(LIFETIMES, len(status), not_confirmed, note="confirmed in the transaction that takes the hold"),
            check_balances(money, {w["customer_id"]: w["balance"] for w in wallets}),
            check_charges(money),
            check_paid(money, stored, status, {}, (), set(), 0, 0),
            Check(READ_MODEL, 0, note="no read model: bookings are read from the table they are written to"),
        ],
    )
    verdict.figures = {"holds stored": len(stored), "oversold tickets": oversold, "wallets": len(money.books)}
    return verdict
