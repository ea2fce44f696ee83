"""Three lock-based ways to take a hold, each doing the same work in ONE PostgreSQL transaction:
reserve the tickets, charge the customer's wallet if the balance allows, record the booking.

- `ConditionalUpdate`: no read-check-write at all. The hot tier row is changed by a single
  ``UPDATE tiers SET remaining = remaining - n WHERE ... AND remaining >= n``, issued as the
  transaction's last statement, so the hot row's lock is held only from it to the COMMIT (the
  best case of this design: the booking row and the wallet charge come first).
- `SelectForUpdate`: the classic pessimistic lock. ``SELECT ... FROM events ... FOR UPDATE`` on
  the event row first, then read the tiers, check, record, charge, write the tiers, COMMIT: the
  event is locked for all of it.
- `RedisLock`: a per-event lock in Redis (``SET lock:event:<id> <token> NX PX <ttl>``, waited
  for by polling with a short backoff), around a read-check-write of the tiers in PostgreSQL;
  released by a compare-and-delete script, so only its owner can release it.

The same rules everywhere: a booking's id is derived from customer, event and Idempotency-Key
(api/hold_keys.py), so a retry finds the booking already recorded and gets it back, and the same
key with other quantities is refused (422). Tier counts cannot go below zero and wallets cannot
be overdrawn (CHECK constraints, a safety net under each design's own check); a charge is a
ledger row unique per (customer, kind, hold). A booking is CONFIRMED when its transaction
commits: these designs have no saga, so a successful hold is also a confirmed booking.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

CONDITIONAL_UPDATE = "conditional-update"
SELECT_FOR_UPDATE = "select-for-update"
REDIS_LOCK = "redis-lock"
STRATEGIES = (CONDITIONAL_UPDATE, SELECT_FOR_UPDATE, REDIS_LOCK)


class Refused(Exception):
    """The hold is not taken: an HTTP status, a stable code and a sentence for the problem body."""

    def __init__(self, status: int, code: str, detail: str, retry_after: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class HoldRequest:
    event_id: str
    hold_id: str
    customer_id: str
    key: str
    quantities: tuple[tuple[str, int], ...]  # sorted by tier
    ttl_ms: int

    @property
    def quantities_text(self) -> str:
        return ",".join(f"{tier}:{count}" for tier, count in self.quantities)

    @property
    def tickets(self) -> int:
        return sum(count for _, count in self.quantities)


@dataclass(frozen=True)
class BookingRow:
    hold_id: str
    customer_id: str
    event_id: str
    quantity: int
    amount: int
    status: str
    created_at: int
    expires_at: int


class Strategy(Protocol):
    name: str

    async def hold(self, request: HoldRequest) -> BookingRow: ...


# ---- the steps every strategy shares ---------------------------------------------------------
_EXISTING = """
SELECT hold_id, customer_id, event_id, quantities, quantity, amount, status, created_at, expires_at
  FROM bookings WHERE hold_id = $1
"""

_PRICES = "SELECT tier, price, remaining FROM tiers WHERE event_id = $1 AND tier = ANY($2::text[])"

_CHARGE = "UPDATE wallets SET balance = balance - $2 WHERE customer_id = $1 AND balance >= $2 RETURNING balance"

_LEDGER = "INSERT INTO ledger (customer_id, kind, ref, amount) VALUES ($1, 'charge', $2, $3)"

_RECORD = """
INSERT INTO bookings (hold_id, customer_id, event_id, idempotency_key, quantities, quantity, amount, status,
                      created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'CONFIRMED', $8, $9)
ON CONFLICT (hold_id) DO NOTHING
RETURNING hold_id
"""

_TAKE_IF_LEFT = """
UPDATE tiers t SET remaining = t.remaining - q.n
  FROM unnest($2::text[], $3::bigint[]) AS q(tier, n)
 WHERE t.event_id = $1 AND t.tier = q.tier AND t.remaining >= q.n
RETURNING t.tier
"""

_TAKE = """
UPDATE tiers t SET remaining = t.remaining - q.n
  FROM unnest($2::text[], $3::bigint[]) AS q(tier, n)
 WHERE t.event_id = $1 AND t.tier = q.tier
"""


def _row(record: Any) -> BookingRow:
    return BookingRow(
        record["hold_id"],
        record["customer_id"],
        record["event_id"],
        record["quantity"],
        record["amount"],
        record["status"],
        record["created_at"],
        record["expires_at"],
    )


async def existing_booking(conn: asyncpg.Connection, request: HoldRequest) -> BookingRow | None:
    """The booking this key already made (a retry gets it back), or None; another body is a 422."""
    found = await conn.fetchrow(_EXISTING, request.hold_id)
    if found is None:
        return None
    if found["quantities"] != request.quantities_text:
        raise Refused(422, "idempotency-key-reused", "this Idempotency-Key was used with other quantities")
    return _row(found)


async def _prices(conn: asyncpg.Connection, request: HoldRequest) -> dict[str, tuple[int, int]]:
    """tier -> (price, remaining) for the requested tiers; 404 / 422 when the event or a tier is missing."""
    rows = await conn.fetch(_PRICES, request.event_id, [tier for tier, _ in request.quantities])
    found = {r["tier"]: (r["price"], r["remaining"]) for r in rows}
    if len(found) != len(request.quantities):
        if not found and not await conn.fetchval("SELECT 1 FROM events WHERE event_id = $1", request.event_id):
            raise Refused(404, "event-not-found", f"event {request.event_id} does not exist")
        raise Refused(422, "unknown-tier", "a requested tier does not exist")
    return found


def _amount(request: HoldRequest, prices: dict[str, tuple[int, int]]) -> int:
    return sum(prices[tier][0] * count for tier, count in request.quantities)


async def _charge_and_record(conn: asyncpg.Connection, request: HoldRequest, amount: int) -> BookingRow:
    """Record the booking and charge the wallet. _RetryLost when a concurrent request with the same
    key recorded it first (the booking row is inserted first, so the second request waits on it
    and then finds it: the transaction rolls back and the answer is that booking)."""
    now = int(time.time() * 1000)
    recorded = await conn.fetchval(
        _RECORD,
        request.hold_id,
        request.customer_id,
        request.event_id,
        request.key,
        request.quantities_text,
        request.tickets,
        amount,
        now,
        now + request.ttl_ms,
    )
    if recorded is None:
        raise _RetryLost
    if await conn.fetchval(_CHARGE, request.customer_id, amount) is None:
        raise Refused(409, "insufficient-funds", f"wallet {request.customer_id} cannot pay {amount}")
    await conn.execute(_LEDGER, request.customer_id, request.hold_id, amount)
    return BookingRow(
        request.hold_id,
        request.customer_id,
        request.event_id,
        request.tickets,
        amount,
        "CONFIRMED",
        now,
        now + request.ttl_ms,
    )


class _RetryLost(Exception):
    """A concurrent request with the same key recorded the booking first: roll back, answer with it."""


async def _winner(pool: asyncpg.Pool, request: HoldRequest) -> BookingRow:
    async with pool.acquire() as conn:
        found = await existing_booking(conn, request)
    if found is None:  # pragma: no cover - the winner committed before the loser's insert returned
        raise Refused(503, "retry", "a concurrent request with the same key is in flight", retry_after="1")
    return found


Take = Callable[[asyncpg.Connection, HoldRequest], Awaitable[BookingRow]]


async def _in_one_transaction(pool: asyncpg.Pool, request: HoldRequest, take: Take) -> BookingRow:
    """The idempotency check, then `take`, in one transaction; a retry that lost the race to its
    original answers with the original's booking."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            found = await existing_booking(conn, request)
            return found if found is not None else await take(conn, request)
    except _RetryLost:
        return await _winner(pool, request)


def _tiers_args(request: HoldRequest) -> tuple[list[str], list[int]]:
    return [tier for tier, _ in request.quantities], [count for _, count in request.quantities]


# ---- the strategies --------------------------------------------------------------------------
@dataclass
class ConditionalUpdate:
    pool: asyncpg.Pool
    name: str = CONDITIONAL_UPDATE

    async def hold(self, request: HoldRequest) -> BookingRow:
        return await _in_one_transaction(self.pool, request, self._take)

    @staticmethod
    async def _take(conn: asyncpg.Connection, request: HoldRequest) -> BookingRow:
        amount = _amount(request, await _prices(conn, request))
        booking = await _charge_and_record(conn, request, amount)
        tiers, counts = _tiers_args(request)
        taken = await conn.fetch(_TAKE_IF_LEFT, request.event_id, tiers, counts)
        if len(taken) != len(tiers):
            raise Refused(409, "sold-out", "not enough tickets left")
        return booking


@dataclass
class SelectForUpdate:
    pool: asyncpg.Pool
    name: str = SELECT_FOR_UPDATE

    async def hold(self, request: HoldRequest) -> BookingRow:
        return await _in_one_transaction(self.pool, request, self._take)

    @staticmethod
    async def _take(conn: asyncpg.Connection, request: HoldRequest) -> BookingRow:
        locked = await conn.fetchval("SELECT 1 FROM events WHERE event_id = $1 FOR UPDATE", request.event_id)
        if locked is None:
            raise Refused(404, "event-not-found", f"event {request.event_id} does not exist")
        prices = await _prices(conn, request)
        if any(prices[tier][1] < count for tier, count in request.quantities):
            raise Refused(409, "sold-out", "not enough tickets left")
        booking = await _charge_and_record(conn, request, _amount(request, prices))
        tiers, counts = _tiers_args(request)
        await conn.execute(_TAKE, request.event_id, tiers, counts)
        return booking


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass
class RedisLock:
    pool: asyncpg.Pool
    redis: Any  # redis.asyncio.Redis
    lock_ttl_ms: int = 5_000  # the lock lapses if its owner dies holding it
    wait_s: float = 10.0  # how long a request waits for the lock before answering 503
    name: str = REDIS_LOCK
    lost_locks: int = 0  # released after they had lapsed (another request may have taken them)

    def __post_init__(self) -> None:
        self._release = self.redis.register_script(_RELEASE)

    async def hold(self, request: HoldRequest) -> BookingRow:
        async with self.pool.acquire() as conn:
            found = await existing_booking(conn, request)
            if found is not None:
                return found
            lock, token = f"lock:event:{request.event_id}", uuid.uuid4().hex
            await self._acquire(lock, token)
            try:
                return await self._read_check_write(conn, request)
            except _RetryLost:
                pass
            finally:
                if not await self._release(keys=[lock], args=[token]):
                    self.lost_locks += 1
        return await _winner(self.pool, request)

    async def _acquire(self, lock: str, token: str) -> None:
        deadline = time.monotonic() + self.wait_s
        pause = 0.001
        while not await self.redis.set(lock, token, nx=True, px=self.lock_ttl_ms):
            if time.monotonic() > deadline:
                raise Refused(503, "lock-timeout", "the event is busy; retry", retry_after="1")
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.008)

    async def _read_check_write(self, conn: asyncpg.Connection, request: HoldRequest) -> BookingRow:
        prices = await _prices(conn, request)
        if any(prices[tier][1] < count for tier, count in request.quantities):
            raise Refused(409, "sold-out", "not enough tickets left")
        async with conn.transaction():
            booking = await _charge_and_record(conn, request, _amount(request, prices))
            tiers, counts = _tiers_args(request)
            await conn.execute(_TAKE, request.event_id, tiers, counts)
            return booking


def build(name: str, pool: asyncpg.Pool, redis: Any) -> Strategy:
    if name == CONDITIONAL_UPDATE:
        return ConditionalUpdate(pool)
    if name == SELECT_FOR_UPDATE:
        return SelectForUpdate(pool)
    if name == REDIS_LOCK:
        return RedisLock(pool, redis)
    raise ValueError(f"unknown baseline strategy {name!r}; one of {', '.join(STRATEGIES)}")
