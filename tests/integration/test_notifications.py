"""Notifications against the real servers: the PostgreSQL store passes the contract; webhooks reach
a real local HTTP receiver, signed, retried after failures and parked after the last attempt; the
API's live stream sends a stored notification. The notifier reading the real log:
tests/integration/test_log_consumers.py."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web

from engine.adapters.http_post import aiohttp_post
from engine.adapters.pg_notifications import PostgresNotifications
from engine.notifications import Webhook
from engine.notifier import Notifier, WebhookDeliverer
from engine.signing import HEADER, verify
from stack.processes import free_port
from tests.contract.notifications import WEEK_S, NotificationStoreContract
from tests.unit.test_notifications import outcomes


class TestPostgresNotifications(NotificationStoreContract):
    @pytest.fixture
    def notifications(self, pool: asyncpg.Pool) -> PostgresNotifications:
        return PostgresNotifications(pool)


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
            await Notifier(store, max_age_s=WEEK_S).handle(outcomes()[1:3])  # ann confirmed, bob released
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
