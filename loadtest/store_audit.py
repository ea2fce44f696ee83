"""The audit of a rezerv run, from its event store and its bookings read model (PostgreSQL).

Reads every stored event once, in the log order the bookings projection reads it ((txid,
position), engine/adapters/pg_log.py), decodes it with the engine's codec and feeds:
- the inventory replay and the client records' checks (loadtest/audit_rules.py),
- the money ledger (loadtest/ledger.py),
- `engine.projections.bookings.plan` + `fold`, whose result must equal the `bookings` table.

Call it when the run is quiet: no request in flight at the API, nothing HELD that is still
being paid for, and the projection caught up (`wait_for_projection`). Otherwise a hold answered
a moment ago is "missing" from a read model that has not seen it yet.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace

import asyncpg

from engine.adapters.pg_bookings import projection_lag
from engine.domain import codec
from engine.log import LoggedEvent
from engine.projections import ledger
from engine.projections.bookings import BOOKING_FIELDS, EVENT_TYPES, Booking, fold, plan
from loadtest.audit_rules import (
    STATEMENTS,
    Check,
    ClientHold,
    InventoryReplay,
    Verdict,
    check_acknowledged,
    check_balances,
    check_charges,
    check_idempotency,
    check_lifetimes,
    check_paid,
    check_read_model,
    check_rentals,
    check_statements,
    check_tiers,
    check_unacknowledged,
)
from loadtest.ledger import Decision, MoneyMove, decision, fold_money, money_move

EXPIRY_GRACE_MS = 30_000  # an overdue hold is expired by its timer or the next sweep (2 s): 30 s is generous
REFUND_GRACE_MS = 60_000  # the saga supervisor re-sends a stuck refund after REZERV_SAGA_RETRY_AFTER_S (10 s)

_ALL_EVENTS = "SELECT stream_id, version, event_type, data, position, txid FROM events ORDER BY txid, position"


async def wait_for_projection(pool: asyncpg.Pool, timeout_s: float = 120.0) -> int:
    """Wait until the bookings and ledger projections have applied every event; returns the lag
    left (0 when caught up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag = await projection_lag(pool)
        if await _ledger_runs(pool):
            lag += await projection_lag(pool, ledger.PROJECTION_NAME)
        if lag == 0 or time.monotonic() > deadline:
            return lag
        await asyncio.sleep(0.2)


async def _ledger_runs(pool: asyncpg.Pool) -> bool:
    """False when the ledger projection never ran here (REZERV_LEDGER=0): no statement to check."""
    found = await pool.fetchval("SELECT 1 FROM log_checkpoints WHERE name = $1", ledger.PROJECTION_NAME)
    return found is not None


async def audit_store(
    pool: asyncpg.Pool,
    clients: Sequence[ClientHold],
    entities: set[str],
    reported_balances: Mapping[str, int] | None = None,
    reported_tiers: Mapping[tuple[str, str], tuple[int, int, int]] | None = None,
    now_ms: int | None = None,
    target: str = "rezerv",
) -> Verdict:
    """The verdict over everything in the store. `entities`: the stream ids of the run's events and
    cars (holds elsewhere are not expected to have client records). `reported_*`: what the API
    answered for wallets (customer -> balance) and tiers ((stream, tier) -> quantity, held,
    confirmed), compared with the auditor's own sums."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    ledger_runs = await _ledger_runs(pool)
    by_stream: dict[str, list[tuple[int, object]]] = defaultdict(list)
    logged: list[LoggedEvent] = []
    money: list[LoggedEvent] = []
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(_ALL_EVENTS, prefetch=5000):
            event = codec.decode_record(row["data"])
            by_stream[row["stream_id"]].append((row["version"], event))
            wanted = [
                into
                for into, types in ((logged, EVENT_TYPES), (money, ledger.EVENT_TYPES))
                if row["event_type"] in types
            ]
            for into in wanted:
                into.append(
                    LoggedEvent(
                        row["stream_id"],
                        row["version"],
                        row["event_type"],
                        row["data"],
                        row["position"],
                        int(row["txid"]),
                        0,
                    )
                )
        rows = await conn.fetch(f"SELECT {', '.join(BOOKING_FIELDS)} FROM bookings")
        statements: dict[str, list[ledger.Entry]] = defaultdict(list)
        for r in await conn.fetch("SELECT * FROM ledger_entries ORDER BY wallet_id, version"):
            statements[r["wallet_id"]].append(ledger.Entry(**dict(r)))
    replay = InventoryReplay()
    moves: list[MoneyMove] = []
    decisions: list[Decision] = []
    for stream_id in sorted(by_stream):
        for _version, event in sorted(by_stream[stream_id], key=lambda pair: pair[0]):
            replay.apply(stream_id, event)
            move = money_move(stream_id, event)
            if move is not None:
                moves.append(move)
            decided = decision(stream_id, event)
            if decided is not None:
                decisions.append(decided)
    money_audit = fold_money(moves)
    expected = fold(plan(logged))
    actual = {r["hold_id"]: Booking(**dict(r)) for r in rows}
    tiers = check_tiers(replay)
    if reported_tiers is not None:
        tiers = _with_reported_tiers(tiers, replay, reported_tiers)
    verdict = Verdict(
        target,
        [
            check_acknowledged(clients, replay.stored),
            check_unacknowledged(clients, replay.stored, entities),
            check_idempotency(clients, replay.stored),
            tiers,
            check_rentals(replay),
            check_lifetimes(replay, now_ms, EXPIRY_GRACE_MS),
            check_balances(money_audit, reported_balances),
            check_charges(money_audit),
            check_paid(
                money_audit,
                replay.stored,
                replay.status,
                replay.ended_at,
                decisions,
                replay.manual,
                now_ms,
                REFUND_GRACE_MS,
            ),
            check_read_model(expected, actual),
            check_statements(ledger.fold(ledger.plan(money)), statements, reported_balances)
            if ledger_runs
            else Check(STATEMENTS, 0, note="the ledger projection is off (REZERV_LEDGER=0): nothing to check"),
        ],
    )
    verdict.figures = {
        "events read": sum(len(v) for v in by_stream.values()),
        "holds stored": len(replay.stored),
        "oversold tickets": replay.oversold_tickets,
        "wallets": len(money_audit.books),
    }
    return verdict


def _with_reported_tiers(
    check: Check, replay: InventoryReplay, reported: Mapping[tuple[str, str], tuple[int, int, int]]
) -> Check:
    problems = list(check.problems)
    for (stream, tier), (quantity, held, confirmed) in sorted(reported.items()):
        mine = replay.tiers.get((stream, tier))
        if mine is None or (mine.quantity, mine.held, mine.confirmed) != (quantity, held, confirmed):
            counted = (mine.quantity, mine.held, mine.confirmed) if mine else None
            problems.append(
                f"{stream} tier {tier}: the API reports (quantity, held, confirmed) = {(quantity, held, confirmed)}, "
                f"the events add up to {counted}"
            )
    return replace(check, problems=tuple(problems))
