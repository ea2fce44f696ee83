"""The booking saga's decisions, without a broker or Ray: the pure steps for a batch of messages,
and the workers driving real entities on in-process shards (tests/unit/local_shard.py), with
the outbox played by hand from the store's log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.domain import codec
from engine.domain.commands import (
    CancelBooking,
    ConfirmBooking,
    CreateEvent,
    Deposit,
    FromMessage,
    GetState,
    HoldTickets,
    Pay,
    Refund,
    ReleaseHold,
    TierSpec,
)
from engine.domain.errors import InvalidTransition
from engine.domain.events import (
    BookingCancelled,
    BookingConfirmed,
    CarHeld,
    HoldExpired,
    HoldReleased,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    TicketsHeld,
)
from engine.domain.results import Done, HoldGranted, Reply, StateView
from engine.outbox import OutboxMessage, message_id
from engine.saga import (
    LATE_PAYMENT,
    PAYMENT_WORKER,
    RESULTS_WORKER,
    BookingResultsWorker,
    PaymentPolicy,
    PaymentWorker,
    SagaStepFailed,
    late_refunds,
    payment_steps,
    result_steps,
)
from tests.dates import starts_in
from tests.unit.local_shard import LocalInventory, local_inventory

AT = 1_800_000_000_000
PRICE = 1_500


def message(stream: str, version: int, event: Any) -> OutboxMessage:
    name, data = codec.encode_named_record(event)
    return OutboxMessage(message_id(stream, version), stream, version, name, data, AT)


def held(hold_id: str, customer: str = "alice", n: int = 2, event_id: str = "e1") -> TicketsHeld:
    return TicketsHeld(event_id, hold_id, customer, (("std", n),), n * PRICE, 60_000, AT + 60_000, AT)


# ---- the pure steps ------------------------------------------------------------------------------
def test_a_new_hold_becomes_a_payment_in_the_customers_wallet_sent_from_its_message() -> None:
    msg = message("event/e1", 7, held("h1"))
    [step] = payment_steps([msg], PaymentPolicy(), PAYMENT_WORKER)
    assert step == FromMessage("alice", PAYMENT_WORKER, "event/e1@7", Pay("alice", "h1", "event/e1", 2 * PRICE))


def test_a_policy_refusal_travels_with_the_payment() -> None:
    msg = message("event/e1", 7, held("h1", n=5))
    [step] = payment_steps([msg], PaymentPolicy(max_tickets=4), PAYMENT_WORKER)
    assert isinstance(step, FromMessage)
    assert isinstance(step.command, Pay)
    assert step.command.refusal == "policy: at most 4 tickets per booking, 5 asked"


def test_the_minimum_payment_policy_leaves_free_bookings_alone() -> None:
    policy = PaymentPolicy(min_amount=100)
    free = TicketsHeld("e1", "h0", "alice", (("free", 1),), 0, 60_000, AT + 60_000, AT)
    assert policy.refusal(free) == ""
    assert policy.refusal(held("h1", n=0)) == ""
    cheap = TicketsHeld("e1", "h2", "alice", (("std", 1),), 50, 60_000, AT + 60_000, AT)
    assert policy.refusal(cheap).startswith("policy: the minimum payment is 100")


@pytest.mark.parametrize(
    ("ending", "reason"),
    [
        (HoldExpired("e1", "h1", AT, "alice"), "the hold expired"),
        (HoldReleased("e1", "h1", "released by customer", AT, "alice"), "hold released: released by customer"),
    ],
)
def test_an_ended_booking_becomes_a_refund_in_the_customers_wallet(ending: Any, reason: str) -> None:
    [step] = payment_steps([message("event/e1", 9, ending)], PaymentPolicy(), PAYMENT_WORKER)
    assert step == FromMessage("alice", PAYMENT_WORKER, "event/e1@9", Refund("alice", "h1", reason))


def test_confirmations_and_endings_without_a_customer_ask_for_nothing() -> None:
    confirmed = message("event/e1", 8, BookingConfirmed("e1", "h1", "h1", AT, "alice"))
    old_ending = message("event/e1", 9, HoldExpired("e1", "h2", AT))  # schema 1: no customer
    assert payment_steps([confirmed, old_ending], PaymentPolicy(), PAYMENT_WORKER) == []


def test_a_car_hold_is_paid_like_a_ticket_hold() -> None:
    from datetime import date

    car = CarHeld("c1", "h5", "bob", date(2027, 1, 1), date(2027, 1, 3), 9_000, 60_000, AT + 60_000, AT)
    [step] = payment_steps([message("car/c1", 3, car)], PaymentPolicy(), PAYMENT_WORKER)
    assert step == FromMessage("bob", PAYMENT_WORKER, "car/c1@3", Pay("bob", "h5", "car/c1", 9_000))


def test_decisions_confirm_or_release_their_booking() -> None:
    ok = message("wallet/alice", 2, PaymentSucceeded("h1", "event/e1", "alice", 3_000, AT))
    ko = message("wallet/bob", 4, PaymentFailed("h2", "car/c1", "bob", 900, "insufficient funds", AT))
    refunded = message("wallet/alice", 3, PaymentRefunded("h1", "event/e1", "alice", 3_000, "x", AT))
    decisions, sources, steps = result_steps([ok, ko, refunded], RESULTS_WORKER)
    assert sources == [ok, ko]
    assert [type(d) for d in decisions] == [PaymentSucceeded, PaymentFailed]
    assert steps == [
        FromMessage("e1", RESULTS_WORKER, "wallet/alice@2", ConfirmBooking("e1", "event", "h1", payment_ref="h1")),
        FromMessage(
            "c1", RESULTS_WORKER, "wallet/bob@4", ReleaseHold("c1", "car", "h2", "payment failed: insufficient funds")
        ),
    ]


def test_only_a_succeeded_payment_whose_confirmation_was_refused_is_refunded() -> None:
    ok = message("wallet/alice", 2, PaymentSucceeded("h1", "event/e1", "alice", 3_000, AT))
    late = message("wallet/alice", 3, PaymentSucceeded("h2", "event/e1", "alice", 3_000, AT))
    failed = message("wallet/bob", 4, PaymentFailed("h3", "event/e1", "bob", 900, "insufficient funds", AT))
    decisions, sources, _ = result_steps([ok, late, failed], RESULTS_WORKER)
    replies: list[Reply] = [
        Done("e1", "h1", "CONFIRMED"),
        InvalidTransition("h2 is EXPIRED"),
        InvalidTransition("h3 is EXPIRED"),
    ]
    assert late_refunds(decisions, sources, replies, RESULTS_WORKER) == [
        FromMessage("alice", RESULTS_WORKER, "wallet/alice@3", Refund("alice", "h2", LATE_PAYMENT))
    ]


# ---- the workers on real entities ------------------------------------------------------------------
@pytest.fixture
async def shards() -> AsyncIterator[LocalInventory]:
    inventory = local_inventory(shard_count=2, retry_for_s=0.0)
    client = inventory.client
    await client.execute(CreateEvent("e1", "Show", "Hall", starts_in(30), (TierSpec("std", PRICE, 10),)))
    await client.execute(Deposit("alice", "d1", 10_000))
    await client.execute(Deposit("bob", "d1", 1_000))
    yield inventory
    await inventory.stop()


class Outbox:
    """The relay, by hand: each call hands out the messages of the events of the given types
    appended since the previous call for those types (every type is handed out once)."""

    def __init__(self, inventory: LocalInventory) -> None:
        self.store = inventory.store
        self.seen: dict[tuple[type, ...], int] = {}

    def new(self, *types: type) -> list[OutboxMessage]:
        start = self.seen.get(types, 0)
        self.seen[types] = len(self.store.log)
        out = []
        for recorded in self.store.log[start:]:
            event = codec.decode_record(recorded.data)
            if isinstance(event, types):
                out.append(message(recorded.stream_id, recorded.version, event))
        return out


async def hold(inventory: LocalInventory, hold_id: str, customer: str, n: int = 2) -> None:
    await inventory.client.execute(HoldTickets("e1", hold_id, customer, (("std", n),), 60_000))


async def booking_status(inventory: LocalInventory, hold_id: str) -> str:
    """The booking's status inside its entity, on whichever shard hosts it."""
    for shard in inventory.shards:
        entity = shard.host.entities.get("event/e1")
        if entity is not None:
            return str(entity.agg.bookings[hold_id].status.value)  # type: ignore[attr-defined]
    raise AssertionError("event e1 is on no shard")


async def balance(inventory: LocalInventory, customer: str) -> int:
    view = await inventory.client.execute_as(GetState(customer, "wallet"), StateView)
    return int(view.state["balance"])


def workers(
    inventory: LocalInventory, policy: PaymentPolicy | None = None
) -> tuple[PaymentWorker, BookingResultsWorker]:
    execute = inventory.client.execute_many
    return PaymentWorker(execute, policy or PaymentPolicy()), BookingResultsWorker(execute)


async def test_a_paid_hold_is_confirmed_and_charged_once_even_when_every_message_comes_twice(
    shards: LocalInventory,
) -> None:
    outbox = Outbox(shards)
    pay, results = workers(shards)
    await hold(shards, "h1", "alice")
    holds = outbox.new(TicketsHeld)
    await pay.handle(holds + holds)
    await pay.handle(holds)
    decisions = outbox.new(PaymentSucceeded, PaymentFailed)
    assert len(decisions) == 1
    await results.handle(decisions + decisions)
    assert await booking_status(shards, "h1") == "CONFIRMED"
    assert await balance(shards, "alice") == 10_000 - 2 * PRICE
    assert await shards.store.processed(PAYMENT_WORKER, [holds[0].message_id]) == {holds[0].message_id}
    assert await shards.store.processed(RESULTS_WORKER, [decisions[0].message_id]) == {decisions[0].message_id}


async def test_a_customer_short_of_money_gets_the_booking_released_with_the_reason(shards: LocalInventory) -> None:
    outbox = Outbox(shards)
    pay, results = workers(shards)
    await hold(shards, "h1", "bob", n=1)  # 1,500 > 1,000
    await pay.handle(outbox.new(TicketsHeld))
    await results.handle(outbox.new(PaymentSucceeded, PaymentFailed))
    assert await booking_status(shards, "h1") == "RELEASED"
    assert await balance(shards, "bob") == 1_000
    [released] = outbox.new(HoldReleased)
    assert codec.decode_record(released.payload).reason == "payment failed: insufficient funds"


async def test_a_payment_that_arrives_after_its_booking_ended_is_paid_back(shards: LocalInventory) -> None:
    outbox = Outbox(shards)
    pay, results = workers(shards)
    await hold(shards, "h1", "alice")
    holds = outbox.new(TicketsHeld)
    await shards.client.execute(ReleaseHold("e1", "event", "h1", "released by customer"))
    await pay.handle(holds)  # the payment worker had not seen the hold before it ended
    await results.handle(outbox.new(PaymentSucceeded, PaymentFailed))
    assert await booking_status(shards, "h1") == "RELEASED"
    assert await balance(shards, "alice") == 10_000
    # The ending reaches the payment worker too: its refund finds the payment refunded already.
    await pay.handle(outbox.new(HoldReleased))
    assert await balance(shards, "alice") == 10_000
    assert len(outbox.new(PaymentRefunded)) == 1, "paid back once: by the results worker, not again for the ending"


async def test_a_confirmed_booking_cancelled_later_is_refunded_once(shards: LocalInventory) -> None:
    outbox = Outbox(shards)
    pay, results = workers(shards)
    await hold(shards, "h1", "alice")
    await pay.handle(outbox.new(TicketsHeld))
    await results.handle(outbox.new(PaymentSucceeded))
    assert await balance(shards, "alice") == 10_000 - 2 * PRICE
    await shards.client.execute(CancelBooking("e1", "event", "h1", "changed plans"))
    cancelled = outbox.new(BookingCancelled)
    await pay.handle(cancelled + cancelled)
    await pay.handle(cancelled)
    assert await balance(shards, "alice") == 10_000
    assert len(outbox.new(PaymentRefunded)) == 1


async def test_a_transient_failure_makes_the_worker_raise_so_the_batch_comes_again(shards: LocalInventory) -> None:
    outbox = Outbox(shards)
    pay, _ = workers(shards)
    await hold(shards, "h1", "alice")
    holds = outbox.new(TicketsHeld)
    shards.store.fail_next_appends = 1
    with pytest.raises(SagaStepFailed):
        await pay.handle(holds)
    assert await shards.store.processed(PAYMENT_WORKER, [holds[0].message_id]) == set()
    await pay.handle(holds)
    assert await balance(shards, "alice") == 10_000 - 2 * PRICE


async def test_one_batch_of_many_bookings_is_one_call_per_shard(shards: LocalInventory) -> None:
    outbox = Outbox(shards)
    pay, _ = workers(shards)
    for i in range(5):
        await hold(shards, f"h{i}", "alice", n=1)
    holds = outbox.new(TicketsHeld)
    before = [s.calls for s in shards.shards]
    await pay.handle(holds)
    calls = [s.calls - b for s, b in zip(shards.shards, before, strict=True)]
    assert sum(calls) == 1, f"five payments of one customer should be one Ray call, were {calls}"


async def test_a_free_ticket_is_confirmed_without_a_charge_even_under_a_minimum_payment(shards: LocalInventory) -> None:
    """A tier priced 0, a customer who never deposited anything, a payment policy with a minimum:
    the wallet records a payment of 0 (the decision), the booking is confirmed, no money moves,
    and cancelling it later refunds nothing."""
    client = shards.client
    await client.execute(CreateEvent("free", "Open day", "Hall", starts_in(30), (TierSpec("gratis", 0, 5),)))
    outbox = Outbox(shards)
    pay, results = workers(shards, PaymentPolicy(min_amount=500))
    granted = await client.execute_as(HoldTickets("free", "f1", "carol", (("gratis", 2),), 60_000), HoldGranted)
    assert granted.amount == 0
    await pay.handle(outbox.new(TicketsHeld))
    [decision] = outbox.new(PaymentSucceeded, PaymentFailed)
    succeeded = codec.decode_record(decision.payload)
    assert isinstance(succeeded, PaymentSucceeded)
    assert (succeeded.amount, succeeded.customer_id, succeeded.booking_stream) == (0, "carol", "event/free")
    await results.handle([decision])
    view = await client.execute_as(GetState("free", "event"), StateView)
    assert view.state["tiers"][0]["confirmed"] == 2
    assert await balance(shards, "carol") == 0
    await client.execute(CancelBooking("free", "event", "f1", "changed plans"))
    await pay.handle(outbox.new(BookingCancelled))
    assert await balance(shards, "carol") == 0
    wallet = await client.execute_as(GetState("carol", "wallet"), StateView)
    assert (wallet.state["balance"], wallet.state["refunds"]) == (0, 1)
