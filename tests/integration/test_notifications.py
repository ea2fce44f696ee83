"""Notifications against the real servers: the PostgreSQL store passes the contract; the notifier
consuming real topics stores each outcome exactly once when messages are delivered twice and
when the broker restarts empty; webhooks reach a real local HTTP receiver, signed, retried after
failures and parked after the last attempt; the API's live stream sends a stored notification."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web

from engine.adapters.http_post import aiohttp_post
from engine.adapters.kafka_consumer import MessageConsumer
from engine.adapters.kafka_topics import ensure_topics
from engine.adapters.pg_notifications import PostgresNotifications
from engine.following import Backoff
from engine.notifications import BOOKING_OUTCOMES, Webhook
from engine.notifier import Notifier, WebhookDeliverer
from engine.signing import HEADER, verify
from stack.processes import free_port
from stack.servers import EmbeddedKafka
from tests.contract.notifications import NotificationStoreContract
from tests.integration.test_kafka_consumer import _restart_empty, keyed, produce, uid, until
from tests.unit.test_notifications import outcomes


class TestPostgresNotifications(NotificationStoreContract):
    @pytest.fixture
    def notifications(self, pool: asyncpg.Pool) -> PostgresNotifications:
        return PostgresNotifications(pool)


async def count(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    return [tuple(r) for r in await pool.fetch("SELECT customer_id, outcome FROM notifications ORDER BY id")]


@pytest.mark.slow  # stopping tansu takes about 5 s
async def test_each_outcome_is_stored_once_under_redelivery_and_a_broker_restart(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_server: EmbeddedKafka
) -> None:
    topic = f"test-notifier-{uid()}"
    await ensure_topics(kafka_bootstrap, {topic: 4})
    notifier = Notifier(PostgresNotifications(pool))
    consumer = MessageConsumer(
        kafka_bootstrap,
        topic,
        f"g-{uid()}",
        "notifier-test",
        notifier.handle,
        notifier.processed,
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
        partitions=4,
        poll_timeout_ms=200,
        reconnect_backoff=Backoff(0.2, 1.0),
        event_types=BOOKING_OUTCOMES,
    )
    messages = outcomes()[:5]  # a hold (skipped) and four booking outcomes
    expected = [("ann", "CONFIRMED"), ("bob", "RELEASED"), ("cy", "EXPIRED"), ("ann", "CANCELLED")]
    task = asyncio.create_task(consumer.run(asyncio.Event()))
    try:
        await produce(kafka_bootstrap, topic, keyed(messages))
        await until(lambda: notifier.stored == 4, 20, "the outcomes stored")
        await produce(kafka_bootstrap, topic, keyed(messages))  # the relay publishing them again
        await until(lambda: consumer.handled >= 8, 20, "the copies handed to the notifier")
        await _restart_empty(kafka_server)  # offsets gone: whatever comes is read from the start
        await ensure_topics(kafka_bootstrap, {topic: 4})
        await produce(kafka_bootstrap, topic, keyed(messages))
        await until(lambda: consumer.handled >= 12, 60, "the copies after the restart handed over")
        assert sorted(await count(pool)) == sorted(expected)
        assert notifier.stored == 4
    finally:
        await asyncio.wait_for(consumer.stop(), 10)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if not (kafka_server.process and kafka_server.process.alive()):
            kafka_server.start()
        await ensure_topics(kafka_bootstrap)


@contextlib.asynccontextmanager
async def receiver(statuses: list[int]) -> AsyncIterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    """A real HTTP webhook receiver on a free port answering `statuses` in turn (then 200)."""
    received: list[tuple[bytes, dict[str, str]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), dict(request.headers)))
        return web.Response(status=statuses.pop(0) if statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/hook", received
    finally:
        await runner.cleanup()


async def test_webhooks_are_signed_retried_after_failures_and_parked_after_the_last_attempt(
    pool: asyncpg.Pool,
) -> None:
    store = PostgresNotifications(pool)
    post, close = aiohttp_post()
    clock = [int(time.time() * 1000)]
    deliverer = WebhookDeliverer(store, post, max_attempts=3, timeout_s=2, clock=lambda: clock[0])
    down = f"http://127.0.0.1:{free_port()}/nobody-listens"
    try:
        async with receiver([500, 503]) as (url, received):
            await store.set_webhook(Webhook("ann", url, "whsec-ann"))
            await store.set_webhook(Webhook("bob", down, "whsec-bob"))
            await Notifier(store).handle(outcomes()[1:3])  # ann confirmed, bob released
            for _ in range(4):
                await deliverer.deliver_due()
                clock[0] += 10 * 60 * 1000
            assert len(received) == 3, "two failures, then delivered"
            body, headers = received[-1]
            assert verify("whsec-ann", headers[HEADER], body, time.time()) > 0
            assert b'"outcome":"CONFIRMED"' in body
            assert b'"amount":100' in body, "a confirmation says what was charged"
            assert await store.due(clock[0] + 10**9, 10) == []
            [(_, attempts, error)] = await store.dead_letters("bob")
            assert "onnect" in error, error
            assert attempts == 3
            assert await store.dead_letters("ann") == []
    finally:
        await close()
