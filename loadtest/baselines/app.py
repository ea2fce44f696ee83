"""The baselines' own tiny app factory: `uvicorn --factory loadtest.baselines.app:create_app`.

The routes a flash sale uses, shaped like rezerv's (api/): create an event, add capacity, read
it, deposit, read a wallet, hold tickets with an Idempotency-Key, read a booking, /metrics with
the requests in flight, /healthz and /readyz. The token check is rezerv's own
(`api.auth.TokenVerifier`: HS256 with the audience, and a token verified once is remembered
until it expires, as rezerv's API does), hold ids are derived by rezerv's `hold_id_for`, and
bodies are validated by rezerv's pydantic models, so the two sides differ only in how a hold is
taken. (Before commit 62749e5 the baselines decoded the token on every request, while rezerv's
API had remembered verified tokens since 2026-11-30: a handicap the comparison did not mean to
give them, worth 13-35% of the conditional UPDATE's throughput; BENCHMARKS.md, section 3.)

Configured by environment variables (not REZERV_*: rezerv refuses unknown ones):

    BASELINE_STRATEGY      conditional-update | select-for-update | redis-lock
    BASELINE_DATABASE_URL  its PostgreSQL database (tables from schema.sql, created at start)
    BASELINE_REDIS_URL     Redis, for the redis-lock strategy
    BASELINE_JWT_SECRET    the secret rezerv's tokens are signed with
    BASELINE_DB_POOL       connections in the pool (default 16)
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import PlainTextResponse, Response

from api.auth import Principal, TokenVerifier, Unauthorized
from api.hold_keys import IDEMPOTENCY_KEY, MAX_KEY_LENGTH, hold_id_for
from api.responses import OrjsonResponse
from api.schemas import AddCapacityIn, CreateEventIn, DepositIn, HoldTicketsIn
from engine.config import Settings
from engine.domain.commands import EVENT
from loadtest.baselines.strategies import HoldRequest, Refused, Strategy, build

SCHEMA = Path(__file__).with_name("schema.sql")
SERVER_SETTINGS = {"search_path": "baseline"}  # the schema of the tables (schema.sql)
DEFAULT_TTL_MS = 600_000


def _problem(status: int, code: str, detail: str, retry_after: str | None = None) -> Response:
    headers = {"Retry-After": retry_after} if retry_after else None
    body = {"type": f"https://rezerv.dev/problems/{code}", "title": code, "status": status, "detail": detail}
    return OrjsonResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


class InFlight:
    """Requests being handled now (ASGI middleware): the load test waits for 0 before auditing."""

    def __init__(self, app: Callable[..., Awaitable[None]], holder: list[InFlight]) -> None:
        self.app = app
        self.count = 0
        holder.append(self)  # the /metrics route reads it from there

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1


async def principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """rezerv's check, rezerv's code: a bearer JWT, HS256, with the audience; verified tokens are
    remembered until they expire (the baselines revoke nothing)."""
    try:
        return request.app.state.tokens.verify(authorization)  # type: ignore[no-any-return]
    except Unauthorized as exc:
        raise Refused(401, "unauthorized", str(exc)) from None


Caller = Annotated[Principal, Depends(principal)]


def create_app(environ: dict[str, str] | None = None) -> FastAPI:
    env = os.environ if environ is None else environ
    strategy_name = env.get("BASELINE_STRATEGY", "")
    settings = Settings(jwt_secret=env.get("BASELINE_JWT_SECRET", ""))
    state: dict[str, Any] = {}
    in_flight: list[InFlight] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            env["BASELINE_DATABASE_URL"],
            min_size=1,
            max_size=int(env.get("BASELINE_DB_POOL", "16")),
            reset=_no_reset,
            server_settings=SERVER_SETTINGS,
        )
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(15)")  # several workers create the tables once
            await conn.execute(SCHEMA.read_text())
            await conn.execute("SELECT pg_advisory_unlock(15)")
        redis = None
        if env.get("BASELINE_REDIS_URL"):
            from engine.adapters.redis_client import create_redis

            redis = create_redis(env["BASELINE_REDIS_URL"])
        state["pool"], state["redis"] = pool, redis
        state["strategy"] = build(strategy_name, pool, redis)
        yield
        await pool.close()
        if redis is not None:
            await redis.aclose()

    app = FastAPI(title=f"lock-based baseline ({strategy_name})", lifespan=lifespan)
    app.state.tokens = TokenVerifier(settings)

    app.add_middleware(InFlight, holder=in_flight)

    @app.exception_handler(Refused)
    async def _refused(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return _problem(exc.status, exc.code, exc.detail, exc.retry_after)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: Exception) -> Response:
        return _problem(422, "invalid-request", str(exc)[:300])

    def admin(who: Principal) -> None:
        if not who.is_admin:
            raise Refused(403, "forbidden", "this operation needs the admin role")

    def pool() -> asyncpg.Pool:
        return state["pool"]

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        await pool().fetchval("SELECT 1")
        if state["redis"] is not None:
            await state["redis"].ping()
        return {"status": "ready"}

    @app.get("/metrics")
    async def metrics() -> Response:
        count = in_flight[0].count if in_flight else 0
        return PlainTextResponse(f"baseline_http_requests_in_flight {count}\n")

    @app.post("/events", status_code=201)
    async def create_event(body: CreateEventIn, who: Caller) -> Response:
        admin(who)
        async with pool().acquire() as conn, conn.transaction():
            created = await conn.fetchval(
                "INSERT INTO events VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1",
                body.event_id,
                body.title,
                body.max_tickets_per_booking,
            )
            if created:
                await conn.executemany(
                    "INSERT INTO tiers VALUES ($1, $2, $3, $4, $4)",
                    [(body.event_id, t.name, t.price, t.quantity) for t in body.tiers],
                )
        return OrjsonResponse(
            {"entity_id": body.event_id, "changed": bool(created)}, status_code=201 if created else 200
        )

    @app.post("/events/{event_id}/capacity")
    async def add_capacity(event_id: str, body: AddCapacityIn, who: Caller) -> Response:
        admin(who)
        async with pool().acquire() as conn, conn.transaction():
            new = await conn.fetchval(
                "INSERT INTO capacity_changes VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
                event_id,
                body.change_id,
                body.tier,
                body.quantity,
            )
            if new:
                changed = await conn.execute(
                    "UPDATE tiers SET quantity = quantity + $3, remaining = remaining + $3 "
                    "WHERE event_id = $1 AND tier = $2",
                    event_id,
                    body.tier,
                    body.quantity,
                )
                if changed.endswith(" 0"):
                    raise Refused(404, "tier-not-found", f"event {event_id} has no tier {body.tier}")
        return OrjsonResponse({"entity_id": event_id, "ref": body.change_id, "changed": bool(new)})

    @app.get("/events/{event_id}")
    async def get_event(event_id: str, _who: Caller) -> Response:
        rows = await pool().fetch(
            "SELECT tier, price, quantity, remaining FROM tiers WHERE event_id = $1 ORDER BY tier", event_id
        )
        if not rows:
            raise Refused(404, "event-not-found", f"event {event_id} does not exist")
        tiers = [
            {
                "name": r["tier"],
                "price": r["price"],
                "quantity": r["quantity"],
                "held": 0,
                "confirmed": r["quantity"] - r["remaining"],
                "available": r["remaining"],
            }
            for r in rows
        ]
        return OrjsonResponse({"event_id": event_id, "tiers": tiers})

    @app.post("/wallets/{customer_id}/deposits", status_code=201)
    async def deposit(customer_id: str, body: DepositIn, who: Caller) -> Response:
        if not who.may_act_for(customer_id):
            raise Refused(403, "not-your-wallet", f"only {customer_id} or an admin may use this wallet")
        async with pool().acquire() as conn, conn.transaction():
            new = await conn.fetchval(
                "INSERT INTO ledger (customer_id, kind, ref, amount) VALUES ($1, 'deposit', $2, $3) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                customer_id,
                body.deposit_id,
                body.amount,
            )
            if new:
                await conn.execute(
                    "INSERT INTO wallets VALUES ($1, $2) "
                    "ON CONFLICT (customer_id) DO UPDATE SET balance = wallets.balance + excluded.balance",
                    customer_id,
                    body.amount,
                )
        return OrjsonResponse(
            {"entity_id": customer_id, "ref": body.deposit_id, "changed": bool(new)}, status_code=201 if new else 200
        )

    @app.get("/wallets/{customer_id}")
    async def wallet(customer_id: str, who: Caller) -> Response:
        if not who.may_act_for(customer_id):
            raise Refused(403, "not-your-wallet", f"only {customer_id} or an admin may read this wallet")
        balance = await pool().fetchval("SELECT balance FROM wallets WHERE customer_id = $1", customer_id)
        return OrjsonResponse({"wallet_id": customer_id, "balance": balance or 0})

    @app.post("/events/{event_id}/holds", status_code=201)
    async def hold(
        event_id: str,
        body: HoldTicketsIn,
        who: Caller,
        idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_KEY)] = None,
    ) -> Response:
        if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH or not idempotency_key.isprintable():
            raise Refused(400, "idempotency-key-required", f"a hold needs an {IDEMPOTENCY_KEY} header")
        customer = body.customer_id if (body.customer_id and who.is_admin) else who.subject
        strategy: Strategy = state["strategy"]
        booking = await strategy.hold(
            HoldRequest(
                event_id,
                hold_id_for(customer, EVENT, event_id, idempotency_key),
                customer,
                idempotency_key,
                tuple(sorted(body.quantities.items())),
                (body.ttl_seconds * 1000) if body.ttl_seconds else DEFAULT_TTL_MS,
            )
        )
        return OrjsonResponse(
            {
                "hold_id": booking.hold_id,
                "event_id": booking.event_id,
                "customer_id": booking.customer_id,
                "amount": booking.amount,
                "expires_at_ms": booking.expires_at,
                "quantity": booking.quantity,
                "status": booking.status,
            },
            status_code=201,
        )

    @app.get("/bookings/{hold_id}")
    async def read_booking(hold_id: str, who: Caller) -> Response:
        row = await pool().fetchrow(
            "SELECT hold_id, customer_id, event_id, quantity, amount, status, created_at FROM bookings "
            "WHERE hold_id = $1",
            hold_id,
        )
        if row is None or not who.may_act_for(row["customer_id"]):
            raise Refused(404, "booking-not-found", f"there is no booking {hold_id}")
        return OrjsonResponse(dict(row) | {"read_at": int(time.time() * 1000)})

    return app


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """Connections leave no session state behind: skip the reset round trip on release (as rezerv's pools do)."""
