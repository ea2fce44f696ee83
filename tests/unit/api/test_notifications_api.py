"""Notifications over HTTP on in-memory stores: the list with pages and the unread filter, marking
read, the live stream (an event per new notification of its customer only, replay from
Last-Event-ID, the end of the stream when its token expires), and webhook registration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from api.app import create_app
from api.auth import issue_token
from api.wiring import Stores
from engine.adapters.memory_accounts import InMemoryAccounts, InMemoryFailures
from engine.adapters.memory_notifications import InMemoryNotifications
from engine.adapters.memory_topups import InMemoryTopups
from engine.config import Settings
from tests.contract.notifications import outcome
from tests.unit.api.asgi_client import AsgiClient
from tests.unit.api.conftest import SECRET, bearer
from tests.unit.api.test_auth_and_validation import assert_problem
from tests.unit.api.test_wallets_api import StoreReads
from tests.unit.local_shard import local_inventory

NOW = 1_800_000_000_000


@pytest.fixture
async def setup() -> AsyncIterator[tuple[AsgiClient, InMemoryNotifications, Settings]]:
    settings = Settings(jwt_secret=SECRET)
    inventory = local_inventory()
    store = InMemoryNotifications()
    stores = Stores(InMemoryAccounts(), InMemoryFailures(), InMemoryTopups(), StoreReads(inventory.store), store)
    app = create_app(settings, dependencies=[], inventory=inventory.client, stores=stores)
    app.state.notification_hub.poll_s = 0.05
    yield AsgiClient(app), store, settings
    await inventory.stop()


async def test_the_list_pages_filters_unread_and_marks_read(
    setup: tuple[AsgiClient, InMemoryNotifications, Settings],
) -> None:
    http, store, settings = setup
    await store.store([outcome("ann") for _ in range(5)] + [outcome("bob")], NOW)
    ann = bearer(settings, "ann")
    first = (await http.get("/customers/ann/notifications?limit=3", headers=ann)).json()
    assert [n["id"] for n in first["notifications"]] == [5, 4, 3]
    rest = (await http.get(f"/customers/ann/notifications?cursor={first['next_cursor']}", headers=ann)).json()
    assert ([n["id"] for n in rest["notifications"]], rest["next_cursor"]) == ([2, 1], None)
    marked = await http.post("/customers/ann/notifications/read", json={"ids": [1, 2, 6]}, headers=ann)
    assert marked.json() == {"marked_read": 2}
    unread = (await http.get("/customers/ann/notifications?unread=true", headers=ann)).json()
    assert [n["id"] for n in unread["notifications"]] == [5, 4, 3]
    assert (await http.post("/customers/ann/notifications/read", json={"all": True}, headers=ann)).json() == {
        "marked_read": 3
    }
    assert_problem(await http.post("/customers/ann/notifications/read", json={}, headers=ann), 422, "ids-or-all")
    assert_problem(await http.get("/customers/bob/notifications", headers=ann), 403, "not-your-notifications")


async def test_the_stream_sends_new_notifications_of_its_customer_until_its_token_expires(
    setup: tuple[AsgiClient, InMemoryNotifications, Settings],
) -> None:
    http, store, settings = setup
    await store.store([outcome("ann", message_id="old")], NOW)
    token = {"Authorization": f"Bearer {issue_token(settings, 'ann', ttl_s=2)}"}

    async def later() -> None:
        await asyncio.sleep(0.4)
        await store.store([outcome("ann", message_id="m1"), outcome("bob", message_id="m2")], NOW)
        await asyncio.sleep(0.2)
        await store.store([outcome("ann", "REFUNDED", message_id="m3")], NOW)

    writer = asyncio.create_task(later())
    reply = await http.get("/customers/ann/notifications/stream", headers=token)
    await writer
    assert reply.status == 200
    assert reply.content_type.startswith("text/event-stream")
    text = reply.body.decode()
    assert "id: 2\r\nevent: notification\r\n" in text
    assert '"outcome":"REFUNDED"' in text
    assert "id: 1\r\n" not in text, "only what came after the stream opened"
    assert "id: 3\r\n" not in text, "only its customer's"

    replay = {"Authorization": f"Bearer {issue_token(settings, 'ann', ttl_s=1)}", "Last-Event-ID": "0"}
    resumed = (await http.get("/customers/ann/notifications/stream", headers=replay)).body.decode()
    assert [line for line in resumed.split("\r\n") if line.startswith("id:")] == ["id: 1", "id: 2", "id: 4"]


async def test_a_webhook_is_registered_with_a_secret_shown_once(
    setup: tuple[AsgiClient, InMemoryNotifications, Settings],
) -> None:
    http, store, settings = setup
    ann = bearer(settings, "ann")
    assert_problem(await http.get("/customers/ann/webhook", headers=ann), 404, "no-webhook")
    bad = await http.put("/customers/ann/webhook", json={"url": "ftp://example.com/x"}, headers=ann)
    assert_problem(bad, 422, "invalid-request")
    made = await http.put("/customers/ann/webhook", json={"url": "http://127.0.0.1:9/hook"}, headers=ann)
    assert made.status == 201
    assert made.json()["secret"].startswith("whsec_")
    shown = (await http.get("/customers/ann/webhook", headers=ann)).json()
    assert shown == {"customer_id": "ann", "url": "http://127.0.0.1:9/hook", "dead_letters": []}
    assert (await store.webhook("ann")).secret == made.json()["secret"]  # type: ignore[union-attr]
    assert (await http.delete("/customers/ann/webhook", headers=ann)).status == 204
    assert await store.webhook("ann") is None
