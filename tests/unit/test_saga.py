"""The booking saga's decisions, without a broker or Ray: the pure steps for a batch of messages,
and the payment worker driving real entities on in-process shards (tests/unit/local_shard.py),
with the outbox played by hand from the store's log."""

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
from engine.domain.wallet import REFUNDED
from engine.outbox import OutboxMessage, message_id
from engine.ports import ExecuteCommands
from engine.saga import (
    LATE_PAYMENT,
    PAYMENT_WORKER,
    PaymentPolicy,
    PaymentWorker,
    SagaStepFailed,
    Step,
    completion_steps,
    late_refunds,
    payment_steps,
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
def test_a_new_hold_becomes_a_plain_payment_in_the_customers_wallet() -> None:
    msg = message("event/e1", 7, held("h1"))
    [step] = payment_steps([msg], PaymentPolicy(), PAYMENT_WORKER)
    assert step == Step(Pay("alice", "h1", "event/e1", 2 * PRICE), msg), "the booking's completion records the message"


def test_a_policy_refusal_travels_with_the_payment() -> None:
    msg = message("event/e1", 7, held("h1", n=5))
    [step] = payment_steps([msg], PaymentPolicy(max_tickets=4), PAYMENT_WORKER)
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
    msg = message("event/e1", 9, ending)
    [step] = payment_steps([msg], PaymentPolicy(), PAYMENT_WORKER)
    assert step == Step(FromMessage("alice", PAYMENT_WORKER, "event/e1@9", Refund("alice", "h1", reason)), msg)


def test_confirmations_and_endings_without_a_customer_ask_for_nothing() -> None:
    confirmed = message("event/e1", 8, BookingConfirmed("e1", "h1", "h1", AT, "alice"))
    old_ending = message("event/e1", 9, HoldExpired("e1", "h2", AT))  # schema 1: no customer
    assert payment_steps([confirmed, old_ending], PaymentPolicy(), PAYMENT_WORKER) == []


def test_a_car_hold_is_paid_like_a_ticket_hold() -> None:
    from datetime import date

    car = CarHeld("c1", "h5", "bob", date(2027, 1, 1), date(2027, 1, 3), 9_000, 60_000, AT + 60_000, AT)
    msg = message("car/c1", 3, car)
    [step] = payment_steps([msg], PaymentPolicy(), PAYMENT_WORKER)
    assert step == Step(Pay("bob", "h5", "car/c1", 9_000), msg)


TOO_MANY = "policy: at most 4 tickets per booking, 5 asked"


def test_each_decided_payment_confirms_or_releases_its_booking_from_the_holds_message() -> None:
    holds = [
        message("event/e1", 2, held("h1")),
        message("car/c1", 4, CarHeld("c1", "h2", "bob", *_rental(), 900, 60_000, AT + 60_000, AT)),
        message("event/e1", 5, held("h3", customer="carol", n=5)),
        message("event/e1", 6, held("h4")),
        message("event/e1", 7, held("h5")),
        message("event/e1", 8, HoldExpired("e1", "h0", AT, "alice")),
    ]
    steps = payment_steps(holds, PaymentPolicy(max_tickets=4), PAYMENT_WORKER)
    replies: list[Reply] = [
        Done("alice", "h1", "SUCCEEDED", 2 * PRICE),
        Done("bob", "h2", "FAILED", 900, reason="insufficient funds"),  # the reason is the wallet's
        Done("carol", "h3", "FAILED", 5 * PRICE, changed=False, reason=TOO_MANY),  # a redelivery: the first decision
        Done("alice", "h4", REFUNDED, 2 * PRICE, changed=False),  # ended and paid back: nothing left to do
        InvalidTransition("a refusal completes nothing"),
        Done("alice", "h0", "NOT_CHARGED", 0, changed=False),  # the ending's refund
    ]
    completions = completion_steps(steps, replies, PAYMENT_WORKER)
    assert [pay.saga_id for pay, _ in completions] == ["h1", "h2", "h3"]
    assert [step for _, step in completions] == [
        Step(FromMessage("e1", PAYMENT_WORKER, "event/e1@2", ConfirmBooking("e1", "event", "h1", "h1")), holds[0]),
        Step(
            FromMessage(
                "c1", PAYMENT_WORKER, "car/c1@4", ReleaseHold("c1", "car", "h2", "payment failed: insufficient funds")
            ),
            holds[1],
        ),
        Step(
            FromMessage(
                "e1",
                PAYMENT_WORKER,
                "event/e1@5",
                ReleaseHold("e1", "event", "h3", f"payment failed: {TOO_MANY}"),
            ),
            holds[2],
        ),
    ]


def _rental() -> tuple[Any, Any]:
    from datetime import date

    return date(2027, 1, 1), date(2027, 1, 3)


def test_only_a_succeeded_payment_whose_confirmation_was_refused_is_refunded() -> None:
    holds = [message("event/e1", v, held(f"h{v}", customer=c)) for v, c in ((1, "alice"), (2, "alice"), (3, "bob"))]
    steps = payment_steps(holds, PaymentPolicy(), PAYMENT_WORKER)
    decided: list[Reply] = [
        Done("alice", "h1", "SUCCEEDED"),
        Done("alice", "h2", "SUCCEEDED"),
        Done("bob", "h3", "FAILED"),
    ]
    completions = completion_steps(steps, decided, PAYMENT_WORKER)
    completed: list[Reply] = [
        Done("e1", "h1", "CONFIRMED"),
        InvalidTransition("h2 is EXPIRED"),
        InvalidTransition("h3 is EXPIRED"),  # a failed payment's booking that ended anyway: nothing was charged
    ]
    assert late_refunds(completions, completed, PAYMENT_WORKER) == [
        Step(FromMessage("alice", PAYMENT_WORKER, "event/e1@2", Refund("alice", "h2", LATE_PAYMENT)), holds[1])
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


def worker(inventory: LocalInventory, policy: PaymentPolicy | None = None) -> PaymentWorker:
    return PaymentWorker(inventory.client.execute_many, policy or PaymentPolicy())


async def test_a_paid_hold_is_confirmed_and_charged_once_even_when_every_message_comes_twice(
    shards: LocalInventory,
) -> None:
    outbox = Outbox(shards)
    pay = worker(shards)
    await hold(shards, "h1", "alice")
    holds = outbox.new(TicketsHeld)
    await pay.handle(holds + holds)
    await pay.handle(holds)
    assert await booking_status(shards, "h1") == "CONFIRMED"
    assert await balance(shards, "alice") == 10_000 - 2 * PRICE
    assert len(outbox.new(PaymentSucceeded)) == 1
    assert len(outbox.new(BookingConfirmed)) == 1
    assert await shards.store.processed(PAYMENT_WORKER, [holds[0].message_id]) == {holds[0].message_id}


async def test_a_customer_short_of_money_gets_the_booking_released_with_the_reason(shards: LocalInventory) -> None:
    outbox = Outbox(shards)
    pay = worker(shards)
    await hold(shards, "h1", "bob", n=1)  # 1,500 > 1,000
    await pay.handle(outbox.new(TicketsHeld))
    assert await booking_status(shards, "h1") == "RELEASED"
    assert await balance(shards, "bob") == 1_000
    [failed] = outbox.new(PaymentFailed)
    assert codec.decode_record(failed.payload).reason == "insufficient funds"
    [released] = outbox.new(HoldReleased)
    assert codec.decode_record(released.payload).reason == "payment failed: insufficient funds"


async def test_a_payment_that_arrives_after_its_booking_ended_is_paid_back(shards: LocalInventory) -> None:
    outbox = Outbox(shards)
    pay = worker(shards)
    await hold(shards, "h1", "alice")
    holds = outbox.new(TicketsHeld)
    await shards.client.execute(ReleaseHold("e1", "event", "h1", "released by customer"))
    await pay.handle(holds)  # the payment worker had not seen the hold before it ended
    assert await booking_status(shards, "h1") == "RELEASED"
    assert await balance(shards, "alice") == 10_000
    assert await shards.store.processed(PAYMENT_WORKER, [holds[0].message_id]) == {holds[0].message_id}
    # The ending reaches the payment worker too: its refund finds the payment refunded already.
    await pay.handle(outbox.new(HoldReleased))
    assert await balance(shards, "alice") == 10_000
    assert len(outbox.new(PaymentRefunded)) == 1, "paid back once: when the confirmation was refused, not again"


async def test_a_confirmed_booking_cancelled_later_is_refunded_once(shards: LocalInventory) -> None:
    outbox = Outbox(shards)
    pay = worker(shards)
    await hold(shards, "h1", "alice")
    await pay.handle(outbox.new(TicketsHeld))
    assert await balance(shards, "alice") == 10_000 - 2 * PRICE
    await shards.client.execute(CancelBooking("e1", "event", "h1", "changed plans"))
    cancelled = outbox.new(BookingCancelled)
    await pay.handle(cancelled + cancelled)
    await pay.handle(cancelled)
    assert await balance(shards, "alice") == 10_000
    assert len(outbox.new(PaymentRefunded)) == 1


async def test_a_transient_failure_makes_the_worker_raise_so_the_batch_comes_again(shards: LocalInventory) -> None:
    outbox = Outbox(shards)
    pay = worker(shards)
    await hold(shards, "h1", "alice")
    holds = outbox.new(TicketsHeld)
    shards.store.fail_next_appends = 1
    with pytest.raises(SagaStepFailed):
        await pay.handle(holds)
    assert await shards.store.processed(PAYMENT_WORKER, [holds[0].message_id]) == set()
    await pay.handle(holds)
    assert await balance(shards, "alice") == 10_000 - 2 * PRICE
    assert await booking_status(shards, "h1") == "CONFIRMED"


async def test_a_worker_that_dies_between_charging_and_confirming_confirms_when_the_hold_comes_again(
    shards: LocalInventory,
) -> None:
    """The charge is durable, the confirmation never left: the hold's message is not in the inbox,
    so its redelivery (or the supervisor's re-send) is handled again, gets the wallet's first
    decision back without a second charge, and confirms."""
    outbox = Outbox(shards)
    calls = 0

    async def dies_after_the_payments(commands: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionError("the worker's process died here")
        return await shards.client.execute_many(commands)

    execute: ExecuteCommands = dies_after_the_payments
    await hold(shards, "h1", "alice")
    holds = outbox.new(TicketsHeld)
    with pytest.raises(ConnectionError):
        await PaymentWorker(execute, PaymentPolicy()).handle(holds)
    assert await balance(shards, "alice") == 10_000 - 2 * PRICE
    assert await booking_status(shards, "h1") == "HELD"
    assert await shards.store.processed(PAYMENT_WORKER, [holds[0].message_id]) == set()
    await worker(shards).handle(holds)
    assert await booking_status(shards, "h1") == "CONFIRMED"
    assert await balance(shards, "alice") == 10_000 - 2 * PRICE
    assert len(outbox.new(PaymentSucceeded)) == 1


async def test_one_batch_of_many_bookings_is_one_call_per_shard_for_the_payments_and_one_for_the_bookings(
    shards: LocalInventory,
) -> None:
    outbox = Outbox(shards)
    pay = worker(shards)
    for i in range(5):
        await hold(shards, f"h{i}", "alice", n=1)
    holds = outbox.new(TicketsHeld)
    before = [s.calls for s in shards.shards]
    await pay.handle(holds)
    calls = [s.calls - b for s, b in zip(shards.shards, before, strict=True)]
    assert sum(calls) == 2, f"five payments of one customer, then their five bookings: two calls, were {calls}"
    assert len(outbox.new(BookingConfirmed)) == 5


async def test_a_free_ticket_is_confirmed_without_a_charge_even_under_a_minimum_payment(shards: LocalInventory) -> None:
    """A tier priced 0, a customer who never deposited anything, a payment policy with a minimum:
    the wallet records a payment of 0 (the decision), the booking is confirmed, no money moves,
    and cancelling it later refunds nothing."""
    client = shards.client
    await client.execute(CreateEvent("free", "Open day", "Hall", starts_in(30), (TierSpec("gratis", 0, 5),)))
    outbox = Outbox(shards)
    pay = worker(shards, PaymentPolicy(min_amount=500))
    granted = await client.execute_as(HoldTickets("free", "f1", "carol", (("gratis", 2),), 60_000), HoldGranted)
    assert granted.amount == 0
    await pay.handle(outbox.new(TicketsHeld))
    [decision] = outbox.new(PaymentSucceeded, PaymentFailed)
    succeeded = codec.decode_record(decision.payload)
    assert isinstance(succeeded, PaymentSucceeded)
    assert (succeeded.amount, succeeded.customer_id, succeeded.booking_stream) == (0, "carol", "event/free")
    view = await client.execute_as(GetState("free", "event"), StateView)
    assert view.state["tiers"][0]["confirmed"] == 2
    assert await balance(shards, "carol") == 0
    await client.execute(CancelBooking("free", "event", "f1", "changed plans"))
    await pay.handle(outbox.new(BookingCancelled))
    assert await balance(shards, "carol") == 0
    wallet = await client.execute_as(GetState("carol", "wallet"), StateView)
    assert (wallet.state["balance"], wallet.state["refunds"]) == (0, 1)
