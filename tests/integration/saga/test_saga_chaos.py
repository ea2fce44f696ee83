"""Every saga ends and the money adds up, even when the payment actor is killed mid-batch and the
broker restarts and forgets everything in the middle of a randomized run."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from engine.domain import codec
from engine.domain.commands import CancelBooking, CreateEvent, Deposit, HoldCar, HoldTickets, RegisterCar, TierSpec
from engine.domain.results import HoldGranted
from stack.servers import EmbeddedKafka
from tests.dates import starts_in
from tests.integration.saga.stack import TERMINAL, SagaStack, saga_stack

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]

TTL_MS = 20_000
BOUND_MS = 25_000  # a saga ends within its time-to-live plus this, whatever happened


async def money_audit(stack: SagaStack, customers: list[str], deposits: dict[str, int]) -> dict[str, int]:
    """Deposits = balances + net charges of confirmed bookings; ended bookings net zero; one charge each."""
    rows = await stack.pool.fetch(
        "SELECT stream_id, event_type, data FROM events WHERE stream_id = ANY($1) ORDER BY stream_id, version",
        [f"wallet/{c}" for c in customers],
    )
    charged: dict[str, int] = defaultdict(int)
    refunded: dict[str, int] = defaultdict(int)
    charges_per_saga: dict[str, int] = defaultdict(int)
    for row in rows:
        event = codec.decode_record(row["data"])
        if row["event_type"] == "PaymentSucceeded":
            charged[event.saga_id] += event.amount
            charges_per_saga[event.saga_id] += 1
        elif row["event_type"] == "PaymentRefunded":
            refunded[event.saga_id] += event.amount
    assert all(n == 1 for n in charges_per_saga.values()), "a saga was charged twice"
    bookings = await stack.pool.fetch("SELECT hold_id, status, amount, payment_status FROM bookings")
    confirmed_total = 0
    for b in bookings:
        net = charged[b["hold_id"]] - refunded[b["hold_id"]]
        if b["status"] == "CONFIRMED":
            assert net == b["amount"], f"confirmed {b['hold_id']} nets {net}, costs {b['amount']}"
            confirmed_total += net
        else:
            assert net == 0, f"{b['status']} {b['hold_id']} nets {net}"
    balances = sum([await stack.balance(c) for c in customers])
    assert sum(deposits.values()) == balances + confirmed_total
    return {"deposits": sum(deposits.values()), "balances": balances, "confirmed": confirmed_total}


async def test_every_saga_ends_and_the_money_adds_up_through_crashes(
    pg_server, redis_url: str, kafka_bootstrap: str, kafka_server: EmbeddedKafka
) -> None:
    name = await pg_server.fresh_database()
    rng = random.Random(42)
    try:
        async with saga_stack(pg_server.url(name), redis_url, kafka_bootstrap, saga_retry_after_s=2.0) as stack:
            client = stack.client
            customers = [f"c{i}-{uuid.uuid4().hex[:6]}" for i in range(12)]
            deposits = {c: rng.choice([0, 400, 2_000, 20_000]) for c in customers}
            await client.execute_many([Deposit(c, "d1", a) for c, a in deposits.items() if a])
            await client.execute_many(
                [CreateEvent(f"ev{i}", "E", "V", starts_in(30), (TierSpec("std", 300, 15),)) for i in range(3)]
                + [RegisterCar(f"car{i}", "Volvo", "V60", "Oslo", 1_000, 1, 5, 100) for i in range(3)]
            )
            first_day = datetime.now(UTC).date() + timedelta(days=2)

            def random_hold(i: int) -> HoldTickets | HoldCar:
                who = rng.choice(customers)
                if rng.random() < 0.6:
                    return HoldTickets(f"ev{rng.randrange(3)}", f"t{i}", who, (("std", rng.randint(1, 3)),), TTL_MS)
                start = first_day + timedelta(days=rng.randrange(20))
                return HoldCar(
                    f"car{rng.randrange(3)}", f"r{i}", who, start, start + timedelta(days=rng.randint(1, 4)), TTL_MS
                )

            held: dict[str, tuple[HoldGranted, float]] = {}

            async def burst(start: int, n: int) -> None:
                commands = [random_hold(i) for i in range(start, start + n)]
                for reply in await client.execute_many(commands):
                    if isinstance(reply, HoldGranted):
                        held[reply.hold_id] = (reply, time.time() * 1000)

            await burst(0, 40)
            # Kill the payment actor's process while it works through the burst: Ray restarts it,
            # and its consumer resumes from the last committed offsets.
            pid = (await stack.services["payments"].ping.remote())["pid"]
            os.kill(pid, signal.SIGKILL)
            await burst(40, 40)
            await _until_restarted(stack, pid)
            await stack.services["payments"].start.remote()
            # The broker forgets every topic, message and offset mid-saga.
            await asyncio.to_thread(kafka_server.stop)
            await burst(80, 30)
            await asyncio.to_thread(kafka_server.start)
            await burst(110, 30)
            # Cancel a few bookings once they are confirmed.
            to_cancel = rng.sample(sorted(held), 8)
            assert held, "no hold was granted"

            cancelled: set[str] = set()

            async def all_ended() -> bool:
                """Every booking ended, and every one cancelled here shown CANCELLED: a booking
                cancelled in this very call is still CONFIRMED in `rows`, and its refund follows."""
                rows = await stack.pool.fetch(
                    "SELECT hold_id, status FROM bookings WHERE hold_id = ANY($1)", list(held)
                )
                confirmed = [r["hold_id"] for r in rows if r["status"] == "CONFIRMED" and r["hold_id"] in to_cancel]
                for hold_id in confirmed:
                    reply = held[hold_id][0]
                    kind = "event" if hold_id.startswith("t") else "car"
                    await client.request(CancelBooking(reply.entity_id, kind, hold_id, "changed plans"))
                    to_cancel.remove(hold_id)
                    cancelled.add(hold_id)
                shown_cancelled = {r["hold_id"] for r in rows if r["status"] == "CANCELLED"}
                return (
                    len(rows) == len(held)
                    and all(r["status"] in TERMINAL for r in rows)
                    and cancelled <= shown_cancelled
                )

            try:
                await stack.until(all_ended, timeout_s=(TTL_MS + BOUND_MS) / 1000 + 30, what="every saga to end")
                await stack.until(lambda: _refunds_settled(stack), timeout_s=30, what="refunds of ended bookings")
            except AssertionError as err:
                stacks = {role: await a.stacks.remote() for role, a in stack.services.items()}
                raise AssertionError(f"{err}; stuck: {await _stuck(stack)}; service tasks: {stacks}") from None

            rows = await stack.pool.fetch(
                "SELECT hold_id, status, held_at, coalesce(confirmed_at, released_at, expired_at) AS ended_at "
                "FROM bookings WHERE hold_id = ANY($1)",
                list(held),
            )
            for r in rows:
                assert r["ended_at"] - r["held_at"] <= TTL_MS + BOUND_MS, f"{r['hold_id']} took too long"
            statuses = {r["status"] for r in rows}
            assert "CONFIRMED" in statuses
            assert statuses & {"RELEASED", "CANCELLED"}, statuses
            totals = await money_audit(stack, customers, deposits)
            assert totals["confirmed"] > 0
    finally:
        if not kafka_server.process or not kafka_server.process.alive():
            kafka_server.start()
        await pg_server.drop_database(name)


async def _stuck(stack: SagaStack) -> list[dict[str, object]]:
    rows = await stack.pool.fetch(
        "SELECT hold_id, status, payment_status, reason, held_at, terminal_version FROM bookings "
        "WHERE status = 'HELD' OR (status IN ('RELEASED', 'EXPIRED', 'CANCELLED') AND payment_status = 'SUCCEEDED') "
        "LIMIT 5"
    )
    details: list[dict[str, object]] = []
    for r in rows[:2]:
        hold = r["hold_id"]
        wallet = await stack.pool.fetch(
            "SELECT stream_id, version, event_type FROM events WHERE stream_id LIKE 'wallet/%' "
            "AND event_type LIKE 'Payment%' AND position(convert_to($1, 'UTF8') in data) > 0",
            hold,
        )
        inbox = await stack.pool.fetch(
            "SELECT consumer, message_id FROM processed_messages WHERE message_id LIKE $1",
            f"%@{r['terminal_version']}",
        )
        details.append(
            {
                **dict(r),
                "wallet": [tuple(w) for w in wallet],
                "inbox": [tuple(i) for i in inbox],
            }
        )
    return details


async def _refunds_settled(stack: SagaStack) -> bool:
    pending = await stack.pool.fetchval(
        "SELECT count(*) FROM bookings WHERE status IN ('RELEASED', 'EXPIRED', 'CANCELLED') "
        "AND payment_status = 'SUCCEEDED'"
    )
    return int(pending) == 0


async def _until_restarted(stack: SagaStack, old_pid: int) -> None:
    for _ in range(200):
        try:
            if (await stack.services["payments"].ping.remote())["pid"] != old_pid:
                return
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the payment actor did not come back")
