"""The booking saga end to end, on real PostgreSQL, Valkey, a Kafka-compatible broker and Ray:
outbox relay -> payment worker -> wallet -> booking, with compensation, expiry
and duplicate delivery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from engine.adapters.kafka_bus import KafkaPublisher
from engine.adapters.pg_log import PostgresLogReader
from engine.domain.commands import CancelBooking, CreateEvent, Deposit, HoldTickets, TierSpec
from engine.domain.results import HoldGranted, StateView
from engine.log import START
from engine.outbox import message_id, plan_message
from tests.dates import starts_in
from tests.integration.saga.stack import SagaStack, saga_stack

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]

PRICE = 500  # per ticket
TTL_MS = 60_000


@pytest.fixture(scope="module")
async def stack(pg_server, redis_url: str, kafka_bootstrap: str) -> AsyncIterator[SagaStack]:
    name = await pg_server.fresh_database()
    # Policy on: at most 5 tickets per booking, payments of at least 300 (the seeds' rules).
    async with saga_stack(
        pg_server.url(name), redis_url, kafka_bootstrap, payment_max_tickets=5, payment_min_amount=300
    ) as s:
        await s.client.execute(
            CreateEvent(
                "show",
                "Show",
                "Hall",
                starts_in(30),
                (TierSpec("std", PRICE, 100), TierSpec("cheap", 100, 100)),
            )
        )
        yield s
    await pg_server.drop_database(name)


def customer() -> str:
    return f"c-{uuid.uuid4().hex[:8]}"


async def hold(stack: SagaStack, who: str, n: int = 2, tier: str = "std", ttl_ms: int = TTL_MS) -> HoldGranted:
    granted = await stack.client.execute(HoldTickets("show", f"h-{uuid.uuid4().hex[:10]}", who, ((tier, n),), ttl_ms))
    assert isinstance(granted, HoldGranted)
    return granted


async def available(stack: SagaStack, tier: str = "std") -> int:
    from engine.domain.commands import GetState

    view = await stack.client.execute_as(GetState("show", "event"), StateView)
    return int(next(t["available"] for t in view.state["tiers"] if t["name"] == tier))


async def test_happy_path_confirms_and_charges_once(stack: SagaStack) -> None:
    alice = customer()
    await stack.client.execute(Deposit(alice, "d1", 10_000))
    h = await hold(stack, alice, 2)
    row = await stack.wait_status(h.hold_id, "CONFIRMED", "SUCCEEDED")
    assert row.confirmed_at is not None
    assert row.held_at <= row.payment_decided_at <= row.confirmed_at
    assert await stack.balance(alice) == 10_000 - 2 * PRICE


async def test_insufficient_funds_releases_and_restores(stack: SagaStack) -> None:
    poor = customer()
    await stack.client.execute(Deposit(poor, "d1", 100))
    before = await available(stack)
    h = await hold(stack, poor, 2)
    row = await stack.wait_status(h.hold_id, "RELEASED", "FAILED")
    assert "insufficient funds" in row.reason
    assert await available(stack) == before
    assert await stack.balance(poor) == 100


@pytest.mark.parametrize(
    ("tickets", "tier", "reason"),
    [
        pytest.param(6, "std", "at most 5 tickets", id="max-tickets"),
        pytest.param(2, "cheap", "minimum payment is 300", id="min-amount"),  # 200 < 300
    ],
)
async def test_a_payment_policy_refusal_releases_without_charging(
    stack: SagaStack, tickets: int, tier: str, reason: str
) -> None:
    rich = customer()
    await stack.client.execute(Deposit(rich, "d1", 100_000))
    h = await hold(stack, rich, tickets, tier=tier)
    row = await stack.wait_status(h.hold_id, "RELEASED", "FAILED")
    assert reason in row.reason
    assert await stack.balance(rich) == 100_000


async def test_cancel_of_a_confirmed_booking_refunds_and_restores(stack: SagaStack) -> None:
    bob = customer()
    await stack.client.execute(Deposit(bob, "d1", 5_000))
    before = await available(stack)
    h = await hold(stack, bob, 3)
    await stack.wait_status(h.hold_id, "CONFIRMED", "SUCCEEDED")
    await stack.client.execute(CancelBooking("show", "event", h.hold_id, "plans changed"))
    row = await stack.wait_status(h.hold_id, "CANCELLED", "REFUNDED")
    assert row.reason.startswith("plans changed") or "plans changed" in row.reason
    assert await available(stack) == before
    assert await stack.balance(bob) == 5_000


async def test_expiry_without_payment_then_a_late_payment_is_refunded(stack: SagaStack) -> None:
    carol = customer()
    await stack.client.execute(Deposit(carol, "d1", 5_000))
    payments = stack.services["payments"]
    await payments.stop.remote()  # no payment will come for now
    try:
        before = await available(stack)
        h = await hold(stack, carol, 2, ttl_ms=1_500)
        row = await stack.wait_status(h.hold_id, "EXPIRED", "NONE", timeout_s=15)
        assert row.expired_at - row.held_at >= 1_500
        assert await available(stack) == before
    finally:
        await payments.start.remote()  # the payment arrives late: charged, then refunded
    await stack.wait_status(h.hold_id, "EXPIRED", "REFUNDED", timeout_s=30)
    assert await stack.balance(carol) == 5_000


async def test_the_same_message_delivered_twice_charges_once(stack: SagaStack) -> None:
    dave = customer()
    await stack.client.execute(Deposit(dave, "d1", 5_000))
    payments = stack.services["payments"]
    await payments.stop.remote()
    try:
        h = await hold(stack, dave, 2)
        # Publish the hold's outbox message twice more, by hand, before the worker sees the original.
        reader = PostgresLogReader(stack.pool)
        events = [e for e in await reader.read_after(START, 100_000) if e.event_type == "TicketsHeld"]
        mine = [e for e in events if h.hold_id.encode() in e.data]
        assert len(mine) == 1
        message = plan_message(mine[0])
        assert message is not None
        async with KafkaPublisher(stack.settings.kafka_bootstrap, topic_prefix=stack.settings.kafka_topic_prefix) as p:
            await p.publish_many([message, message])
    finally:
        await payments.start.remote()
    await stack.wait_status(h.hold_id, "CONFIRMED", "SUCCEEDED")
    assert await stack.balance(dave) == 5_000 - 2 * PRICE
    charges = await stack.pool.fetchval(
        "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'PaymentSucceeded'", f"wallet/{dave}"
    )
    assert charges == 1
    inbox = await stack.pool.fetch(
        "SELECT stream_id FROM processed_messages WHERE consumer = 'payment-worker' AND message_id = $1",
        message_id(mine[0].stream_id, mine[0].version),
    )
    assert [row["stream_id"] for row in inbox] == [mine[0].stream_id], "recorded once, with the confirmation"


async def test_the_outbox_services_log_followers_share_one_listening_connection(stack: SagaStack) -> None:
    """Relay, bookings, catalog and ledger: one backend woken per commit, not four (pg_log.AppendListener)."""

    async def listening() -> int:
        return int(
            await stack.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            )
        )

    async def someone_listens() -> bool:
        return await listening() >= 1

    await stack.until(someone_listens, what="a log follower listening")
    await asyncio.sleep(0.5)
    assert await listening() == 1
