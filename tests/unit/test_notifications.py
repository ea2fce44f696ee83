"""Notifications, pure and on fakes: which messages are outcomes, one notification per message
id, the notifier's batches, and webhook deliveries retried with backoff then parked."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from engine.adapters.memory_notifications import InMemoryNotifications
from engine.domain import codec
from engine.domain.events import (
    BookingCancelled,
    BookingConfirmed,
    HoldExpired,
    HoldReleased,
    PaymentRefunded,
    PaymentSucceeded,
    TicketsHeld,
)
from engine.notifications import Webhook, next_attempt, plan
from engine.notifier import Notifier, WebhookDeliverer
from engine.outbox import OutboxMessage
from engine.signing import HEADER, verify
from tests.contract.notifications import NOW, WEEK_S, NotificationStoreContract


class TestInMemoryNotifications(NotificationStoreContract):
    @pytest.fixture
    def notifications(self) -> InMemoryNotifications:
        return InMemoryNotifications()


def message(stream: str, version: int, event: object) -> OutboxMessage:
    name, data = codec.encode_named_record(event)
    return OutboxMessage(f"{stream}@{version}", stream, version, name, data, NOW)


def outcomes() -> list[OutboxMessage]:
    return [
        message("event/e1", 1, TicketsHeld("e1", "h1", "ann", (("std", 1),), 100, 1, NOW, NOW)),
        message("event/e1", 2, BookingConfirmed("e1", "h1", "pay", NOW, "ann", 100)),
        message("event/e1", 3, HoldReleased("e1", "h2", "payment failed: insufficient funds", NOW, "bob")),
        message("car/c1", 4, HoldExpired("c1", "h3", NOW, "cy")),
        message("event/e1", 5, BookingCancelled("e1", "h1", "cancelled by customer", NOW, "ann")),
        message("wallet/ann", 6, PaymentRefunded("h1", "event/e1", "ann", 100, "booking cancelled", NOW)),
        message("wallet/ann", 7, PaymentSucceeded("h9", "event/e1", "ann", 100, NOW)),
        message("event/e1", 8, BookingConfirmed("e1", "h0", "pay", NOW, "")),  # schema 1: no customer
    ]


def test_every_outcome_is_one_notification_with_its_reason_and_nothing_else_is() -> None:
    got = [(n.customer_id, n.hold_id, n.outcome, n.reason, n.amount, n.booking_stream) for n in plan(outcomes())]
    assert got == [
        ("ann", "h1", "CONFIRMED", "", 100, "event/e1"),
        ("bob", "h2", "RELEASED", "payment failed: insufficient funds", 0, "event/e1"),
        ("cy", "h3", "EXPIRED", "the hold expired", 0, "car/c1"),
        ("ann", "h1", "CANCELLED", "cancelled by customer", 0, "event/e1"),
        ("ann", "h1", "REFUNDED", "booking cancelled", 100, "event/e1"),
    ]
    assert len(plan(outcomes() + outcomes())) == 5, "a message twice in a batch is one notification"


def test_a_confirmation_stored_before_it_carried_the_amount_is_notified_with_an_amount_of_0() -> None:
    schema_2 = codec.encode(("BookingConfirmed", 2, "e1", "h1", "pay", NOW, "ann"))  # as written before
    event = codec.decode_record(schema_2)
    assert event == BookingConfirmed("e1", "h1", "pay", NOW, "ann", 0)
    old = OutboxMessage("event/e1@2", "event/e1", 2, "BookingConfirmed", schema_2, NOW)
    [notification] = plan([old])
    assert (notification.outcome, notification.amount) == ("CONFIRMED", 0)


def test_an_outcome_that_happened_before_the_horizon_is_not_notified() -> None:
    confirmed, released = outcomes()[1:3]  # both at NOW
    assert [n.outcome for n in plan([confirmed, released], not_before_ms=NOW)] == ["CONFIRMED", "RELEASED"]
    assert plan([confirmed, released], not_before_ms=NOW + 1) == []


async def test_the_notifier_skips_outcomes_older_than_its_maximum_age_as_on_a_first_start_on_a_long_log() -> None:
    store = InMemoryNotifications()
    day_ms = 86_400_000
    week_later = Notifier(store, max_age_s=WEEK_S, clock=lambda: NOW + 7 * day_ms + 1)
    await week_later.handle(outcomes())
    assert week_later.stored == 0, "a week and a millisecond old: not news"
    six_days_later = Notifier(store, max_age_s=WEEK_S, clock=lambda: NOW + 6 * day_ms)
    await six_days_later.handle(outcomes())
    assert six_days_later.stored == 5


async def test_the_notifier_stores_each_outcome_once_under_redelivery() -> None:
    store = InMemoryNotifications()
    notifier = Notifier(store, max_age_s=WEEK_S)
    await notifier.handle(outcomes()[:4])
    await notifier.handle(outcomes())  # redelivered, plus the rest
    await notifier.handle(outcomes()[2:])
    assert [s.notification.outcome for s in await store.page("ann", 2**62, 10, False)] == [
        "REFUNDED",
        "CANCELLED",
        "CONFIRMED",
    ]
    assert notifier.stored == 5


def test_retries_back_off_from_a_second_to_five_minutes_with_jitter() -> None:
    delays = [(next_attempt(n, 0)) / 1000 for n in (1, 2, 3, 10, 30)]
    assert 0.8 <= delays[0] <= 1.2
    assert 1.6 <= delays[1] <= 2.4
    assert 3.2 <= delays[2] <= 4.8
    assert 240 <= delays[3] <= 360
    assert 240 <= delays[4] <= 360


class Receiver:
    """Webhook receivers that answer from a script of statuses per URL (None: refuse to connect)."""

    def __init__(self, scripts: dict[str, Sequence[int | None]]) -> None:
        self.scripts = {url: list(script) for url, script in scripts.items()}
        self.bodies: list[tuple[bytes, dict[str, str]]] = []

    async def post(self, url: str, data: bytes, headers: dict[str, str], timeout_s: float) -> int:
        self.bodies.append((data, headers))
        script = self.scripts[url]
        status = script.pop(0) if script else 200
        if status is None:
            raise ConnectionRefusedError("nobody listens")
        return status


async def test_a_failing_webhook_is_retried_and_parked_after_the_last_attempt() -> None:
    store = InMemoryNotifications()
    await store.set_webhook(Webhook("ann", "http://hook", "whsec"))
    await store.set_webhook(Webhook("bob", "http://hook-b", "whsec-b"))
    clock = [NOW]
    receiver = Receiver({"http://hook": [None, 500, 200], "http://hook-b": [503, 503, 503]})
    deliverer = WebhookDeliverer(store, receiver.post, max_attempts=3, clock=lambda: clock[0])
    await Notifier(store, max_age_s=WEEK_S).handle(outcomes()[1:3])  # one for ann, one for bob
    tries = 0
    while store.deliveries and tries < 20:
        tries += 1
        await deliverer.deliver_due()
        clock[0] += 10 * 60 * 1000  # past any backoff
    assert (deliverer.sent, deliverer.parked) == (1, 1)
    assert [n for n, _, _ in await store.dead_letters("bob")] == [2]
    data, headers = receiver.bodies[0]
    assert verify("whsec", headers[HEADER], data, float(headers[HEADER].split(",")[0][2:]))
    assert headers["Rezerv-Notification-Id"] == "1"
