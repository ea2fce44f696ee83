"""The NotificationStore contract (engine/ports.py), run against the in-memory store
(tests/unit) and PostgreSQL (tests/integration). A subclass provides the `notifications` fixture."""

from __future__ import annotations

import uuid

from engine.notifications import CONFIRMED, REFUNDED, Notification, Webhook
from engine.ports import NotificationStore

NOW = 1_800_000_000_000
WEEK_S = 7 * 86_400.0
"""A notifier's maximum age in the tests (REZERV_NOTIFY_MAX_AGE_S, as by default)."""


def outcome(customer: str, outcome_: str = CONFIRMED, message_id: str | None = None) -> Notification:
    return Notification(message_id or uuid.uuid4().hex, customer, "h1", "event/e1", outcome_, "", 0, NOW)


class NotificationStoreContract:
    async def test_a_message_is_stored_once_whatever_its_deliveries(self, notifications: NotificationStore) -> None:
        a, b = outcome("ann"), outcome("ann", REFUNDED)
        before = await notifications.last_id()
        assert await notifications.store([a, b, a], NOW) == 2, "the repeated message counted once"
        first = await notifications.after(["ann"], before, 10)
        assert [s.notification for s in first] == [a, b]
        assert first[0].id < first[1].id
        assert await notifications.store([b, a], NOW) == 0
        assert await notifications.after(["ann"], before, 10) == first
        assert [s.notification for s in await notifications.page("ann", 2**62, 10, False)] == [b, a]

    async def test_pages_unread_and_marking_read(self, notifications: NotificationStore) -> None:
        before = await notifications.last_id()
        assert await notifications.store([outcome("bo") for _ in range(5)] + [outcome("cy")], NOW) == 6
        stored = await notifications.after(["bo", "cy"], before, 10)
        ids = [s.id for s in stored if s.notification.customer_id == "bo"]
        newest = await notifications.page("bo", 2**62, 2, False)
        assert [s.id for s in newest] == ids[::-1][:2]
        assert [s.id for s in await notifications.page("bo", newest[-1].id, 10, False)] == ids[::-1][2:]
        assert await notifications.mark_read("bo", [ids[0], ids[1], stored[-1].id], NOW) == 2, "not another's"
        assert [s.id for s in await notifications.page("bo", 2**62, 10, True)] == ids[::-1][:3]
        assert await notifications.mark_read("bo", None, NOW) == 3
        assert await notifications.page("bo", 2**62, 10, True) == []
        assert (await notifications.page("cy", 2**62, 10, True))[0].read_at is None

    async def test_the_live_cursor_sees_what_came_after_it(self, notifications: NotificationStore) -> None:
        before = await notifications.last_id()
        batch = [outcome("dee"), outcome("eli"), outcome("dee")]
        assert await notifications.store(batch, NOW) == 3
        stored = await notifications.after(["dee", "eli"], before, 10)
        assert [s.notification for s in stored] == batch, "ids follow the batch's order"
        assert await notifications.last_id() == stored[-1].id
        assert [s.id for s in await notifications.after(["dee"], before, 10)] == [stored[0].id, stored[2].id]
        assert [s.id for s in await notifications.after(["dee", "eli"], stored[0].id, 1)] == [stored[1].id]

    async def test_a_webhook_gets_a_delivery_per_new_notification_until_delivered_or_parked(
        self, notifications: NotificationStore
    ) -> None:
        await notifications.set_webhook(Webhook("fay", "http://hook/1", "s1"))
        assert await notifications.webhook("fay") == Webhook("fay", "http://hook/1", "s1")
        before = await notifications.last_id()
        assert await notifications.store([outcome("fay"), outcome("fay"), outcome("gil")], NOW) == 3
        stored = await notifications.after(["fay", "gil"], before, 10)
        due = await notifications.due(NOW, 10)
        assert [(d.stored.id, d.url, d.secret, d.attempts) for d in due] == [
            (stored[0].id, "http://hook/1", "s1", 0),
            (stored[1].id, "http://hook/1", "s1", 0),
        ]
        await notifications.delivered([due[0].delivery_id])
        await notifications.retry_later(due[1].delivery_id, 1, NOW + 1000, "answered 500")
        assert await notifications.due(NOW, 10) == []
        [again] = await notifications.due(NOW + 1000, 10)
        assert again.attempts == 1
        await notifications.dead_letter(again.delivery_id, 2, "answered 500", NOW + 2000)
        assert await notifications.due(NOW + 10**9, 10) == []
        assert await notifications.dead_letters("fay") == [(stored[1].id, 2, "answered 500")]
        assert await notifications.delete_webhook("fay")
        assert await notifications.webhook("fay") is None
        assert not await notifications.delete_webhook("fay")
