"""The lock-based baselines (loadtest/baselines/) on real PostgreSQL and Valkey: none oversells,
a retry with the same key gets its booking back, money and tickets add up in their own audit,
and the app answers like rezerv's API where the load test looks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from api.auth import issue_token
from api.hold_keys import hold_id_for
from engine.adapters.redis_client import create_redis
from engine.config import Settings
from loadtest.audit_rules import ClientHold
from loadtest.baselines.app import SCHEMA, SERVER_SETTINGS, create_app
from loadtest.baselines.audit import audit_baseline
from loadtest.baselines.strategies import STRATEGIES, HoldRequest, Refused, build
from tests.unit.api.asgi_client import AsgiClient

PRICE = 100


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=12, server_settings=SERVER_SETTINGS)
    await pool.execute(SCHEMA.read_text())
    yield pool
    await pool.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Any]:
    client = create_redis(redis_url)
    yield client
    await client.aclose()


async def an_event(pool: asyncpg.Pool, tickets: int, customers: int, funds: int = 1_000_000) -> str:
    event_id = f"e{uuid.uuid4().hex[:8]}"
    await pool.execute("INSERT INTO events VALUES ($1, 'show', 0)", event_id)
    await pool.execute("INSERT INTO tiers VALUES ($1, 'std', $2, $3, $3)", event_id, PRICE, tickets)
    for i in range(customers):
        await pool.execute("INSERT INTO wallets VALUES ($1, $2)", f"{event_id}-c{i}", funds)
        await pool.execute(
            "INSERT INTO ledger (customer_id, kind, ref, amount) VALUES ($1, 'deposit', 'd', $2)",
            f"{event_id}-c{i}",
            funds,
        )
    return event_id


def request(event_id: str, customer: str, key: str, tickets: int = 1) -> HoldRequest:
    return HoldRequest(
        event_id, hold_id_for(customer, "event", event_id, key), customer, key, (("std", tickets),), 60_000
    )


@pytest.mark.parametrize("name", STRATEGIES)
async def test_a_baseline_sells_exactly_what_it_has_and_its_audit_passes(
    pool: asyncpg.Pool, redis: Any, name: str
) -> None:
    strategy = build(name, pool, redis)
    event_id = await an_event(pool, tickets=10, customers=30)
    requests = [request(event_id, f"{event_id}-c{i}", f"k{i}") for i in range(30)]
    outcomes = await asyncio.gather(*(strategy.hold(r) for r in requests), return_exceptions=True)
    granted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, Refused)]
    assert len(granted) == 10
    assert len(refused) == 20
    assert {r.code for r in refused} == {"sold-out"}
    assert await pool.fetchval("SELECT remaining FROM tiers WHERE event_id = $1", event_id) == 0
    clients = [
        ClientHold(
            r.customer_id,
            f"event/{event_id}",
            r.key,
            r.hold_id,
            409 if isinstance(o, Refused) else 201,
            () if isinstance(o, BaseException) else (o.hold_id,),
            None if isinstance(o, BaseException) else o.amount,
            None if isinstance(o, BaseException) else o.expires_at,
        )
        for r, o in zip(requests, outcomes, strict=True)
    ]
    verdict = await audit_baseline(pool, clients, {f"event/{event_id}"}, name)
    assert verdict.ok, verdict.table()


@pytest.mark.parametrize("name", STRATEGIES)
async def test_a_retry_gets_its_booking_back_and_another_body_is_refused(
    pool: asyncpg.Pool, redis: Any, name: str
) -> None:
    strategy = build(name, pool, redis)
    event_id = await an_event(pool, tickets=10, customers=1)
    customer = f"{event_id}-c0"
    first, again = await asyncio.gather(
        strategy.hold(request(event_id, customer, "k", 2)), strategy.hold(request(event_id, customer, "k", 2))
    )
    assert first.hold_id == again.hold_id
    assert await pool.fetchval("SELECT count(*) FROM ledger WHERE kind = 'charge' AND customer_id = $1", customer) == 1
    assert await pool.fetchval("SELECT balance FROM wallets WHERE customer_id = $1", customer) == 1_000_000 - 2 * PRICE
    with pytest.raises(Refused) as refused:
        await strategy.hold(request(event_id, customer, "k", 3))
    assert refused.value.status == 422


@pytest.mark.parametrize("name", STRATEGIES)
async def test_a_booking_the_wallet_cannot_pay_takes_nothing(pool: asyncpg.Pool, redis: Any, name: str) -> None:
    strategy = build(name, pool, redis)
    event_id = await an_event(pool, tickets=10, customers=1, funds=150)
    with pytest.raises(Refused) as refused:
        await strategy.hold(request(event_id, f"{event_id}-c0", "k", 2))
    assert (refused.value.status, refused.value.code) == (409, "insufficient-funds")
    assert await pool.fetchval("SELECT remaining FROM tiers WHERE event_id = $1", event_id) == 10
    assert await pool.fetchval("SELECT count(*) FROM bookings WHERE event_id = $1", event_id) == 0


async def test_a_tampered_baseline_table_fails_its_audit(pool: asyncpg.Pool, redis: Any) -> None:
    strategy = build(STRATEGIES[0], pool, redis)
    event_id = await an_event(pool, tickets=5, customers=1)
    booking = await strategy.hold(request(event_id, f"{event_id}-c0", "k", 2))
    await pool.execute("UPDATE tiers SET remaining = 5 WHERE event_id = $1", event_id)  # a lost update
    await pool.execute(
        "INSERT INTO ledger (customer_id, kind, ref, amount) VALUES ($1, 'refund', 'ghost', 7)", f"{event_id}-c0"
    )
    client = ClientHold(
        f"{event_id}-c0",
        f"event/{event_id}",
        "k",
        booking.hold_id,
        201,
        (booking.hold_id,),
        booking.amount,
        booking.expires_at,
    )
    verdict = await audit_baseline(pool, [client], {f"event/{event_id}"}, "tampered")
    assert {c.name for c in verdict.checks if not c.ok} == {
        "no tier over its quantity",
        "balance = deposits - charges + refunds",
        "no saga charged twice, refunds at most once",
    }


async def test_the_app_checks_tokens_and_keys_and_hides_other_customers_bookings(
    database_url: str, redis_url: str
) -> None:
    secret = "s" * 32
    app = create_app(
        {
            "BASELINE_STRATEGY": "conditional-update",
            "BASELINE_DATABASE_URL": database_url,
            "BASELINE_REDIS_URL": redis_url,
            "BASELINE_JWT_SECRET": secret,
        }
    )
    settings = Settings(jwt_secret=secret)
    admin = {"Authorization": "Bearer " + issue_token(settings, "root", ("admin",))}
    ann = {"Authorization": "Bearer " + issue_token(settings, "ann")}
    bo = {"Authorization": "Bearer " + issue_token(settings, "bo")}
    client = AsgiClient(app)
    async with app.router.lifespan_context(app):
        event = {
            "event_id": "gig",
            "title": "Gig",
            "venue": "Hall",
            "starts_at": "2027-09-01T20:00:00+00:00",
            "tiers": [{"name": "std", "price": 100, "quantity": 3}],
        }
        assert (await client.request("POST", "/events", json=event, headers=admin)).status == 201
        assert (await client.request("POST", "/events", json=event, headers=ann)).status == 403
        deposit = {"deposit_id": "d1", "amount": 1_000, "reason": "test"}
        assert (await client.request("POST", "/wallets/ann/deposits", json=deposit, headers=admin)).status == 201
        body = {"quantities": {"std": 2}}
        assert (await client.request("POST", "/events/gig/holds", json=body, headers=ann)).status == 400
        assert (
            await client.request("POST", "/events/gig/holds", json=body, headers={"Idempotency-Key": "k"})
        ).status == 401
        held = await client.request("POST", "/events/gig/holds", json=body, headers=ann | {"Idempotency-Key": "k"})
        assert held.status == 201
        assert held.json()["hold_id"] == hold_id_for("ann", "event", "gig", "k")
        again = await client.request("POST", "/events/gig/holds", json=body, headers=ann | {"Idempotency-Key": "k"})
        assert again.json()["hold_id"] == held.json()["hold_id"]
        more = await client.request("POST", "/events/gig/holds", json=body, headers=ann | {"Idempotency-Key": "k2"})
        assert more.status == 409
        hold_id = held.json()["hold_id"]
        assert (await client.request("GET", f"/bookings/{hold_id}", headers=ann)).status == 200
        assert (await client.request("GET", f"/bookings/{hold_id}", headers=bo)).status == 404
        tiers = (await client.request("GET", "/events/gig", headers=ann)).json()["tiers"]
        assert (tiers[0]["confirmed"], tiers[0]["available"]) == (2, 1)
        assert (await client.request("GET", "/wallets/ann", headers=ann)).json()["balance"] == 800
        metrics = await client.request("GET", "/metrics")
        assert metrics.body == b"baseline_http_requests_in_flight 1\n"
        # rezerv's token check, cache included: a verified token is remembered, a forged or
        # expired one is refused
        assert app.state.tokens.hits > 0
        forged = {"Authorization": "Bearer " + issue_token(Settings(jwt_secret="x" * 32), "ann")}
        assert (await client.request("GET", f"/bookings/{hold_id}", headers=forged)).status == 401
        expired = {"Authorization": "Bearer " + issue_token(settings, "ann", ttl_s=-1)}
        assert (await client.request("GET", f"/bookings/{hold_id}", headers=expired)).status == 401
