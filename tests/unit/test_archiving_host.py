"""Settled bookings and payments leave the host's memory for the archive, and come back when a
command names them: on in-memory fakes, with a clock moved by hand."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import pytest

from engine.adapters.memory_fencing import InMemoryFencing
from engine.adapters.memory_store import InMemoryEventStore
from engine.domain import codec
from engine.domain.booking import BookingStatus
from engine.domain.commands import (
    CancelBooking,
    ConfirmBooking,
    CreateEvent,
    Deposit,
    FromMessage,
    HoldTickets,
    Pay,
    Refund,
    ReleaseHold,
    TierSpec,
)
from engine.domain.errors import BookingNotFound, IdempotencyConflict
from engine.domain.results import Done, HoldGranted
from engine.domain.tickets import TicketedEvent
from engine.domain.wallet import Wallet
from engine.hosting import EntityHost, HostConfig
from engine.pacing import Pacer
from engine.ports import ManualClock

TTL = 60_000
AFTER = 60_000  # archive_after_ms


def make_host(store: InMemoryEventStore, clock: ManualClock, owner: str = "h1", **config: int) -> EntityHost:
    settings = {"archive_after_ms": AFTER, "snapshot_every": 1, "snapshot_min_interval_ms": 0, **config}
    host = EntityHost(store, InMemoryFencing(clock=clock), HostConfig(owner=owner, **settings), clock, archive=store)
    host.start()
    return host


def create(quantity: int = 10) -> CreateEvent:
    return CreateEvent("e1", "Show", "Hall", "2027-06-01T20:00:00+00:00", (TierSpec("std", 100, quantity),))


def hold(hold_id: str, n: int = 1, customer: str = "alice") -> HoldTickets:
    return HoldTickets("e1", hold_id, customer, (("std", n),), TTL)


def event_of(host: EntityHost) -> TicketedEvent:
    agg = host.entities["event/e1"].agg
    assert isinstance(agg, TicketedEvent)
    return agg


def recorded(store: InMemoryEventStore, event_type: str, stream: str = "event/e1") -> int:
    return sum(1 for r in store.streams.get(stream, []) if r.event_type == event_type)


async def sold_and_archived(store: InMemoryEventStore, clock: ManualClock) -> EntityHost:
    """h1 (2 tickets) confirmed, h2 (1) released, h3 (1) still held; then a minute passes and the
    settled two are archived."""
    host = make_host(store, clock)
    await host.execute([create(), hold("h1", 2), hold("h2"), hold("h3")])
    await host.execute([ConfirmBooking("e1", "event", "h1", "pay-1"), ReleaseHold("e1", "event", "h2", "no money")])
    clock.advance(AFTER + 1)
    assert await host.upkeep.archive_settled() == 2
    return host


async def test_settled_bookings_leave_memory_and_the_tickets_they_sold_stay_sold() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = await sold_and_archived(store, clock)
    agg = event_of(host)
    assert set(agg.bookings) == {"h3"}, "a held booking stays: its expiry and payment still need it"
    tier = agg.tiers["std"]
    assert (tier.confirmed, tier.held, tier.available) == (2, 1, 7)
    agg.check_invariants()
    assert set(await store.get("event/e1", ["h1", "h2", "h3"])) == {"h1", "h2"}
    assert host.stats["archived"] == 2
    await host.stop()


async def test_a_booking_settled_less_than_the_delay_ago_stays_in_memory() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = make_host(store, clock)
    await host.execute([create(), hold("h1")])
    await host.execute([ConfirmBooking("e1", "event", "h1")])
    clock.advance(AFTER - 1)
    assert await host.upkeep.archive_settled() == 0
    assert "h1" in event_of(host).bookings
    await host.stop()


async def test_a_retried_hold_of_an_archived_booking_is_answered_as_that_booking_and_sells_nothing() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = await sold_and_archived(store, clock)
    [again] = await host.execute([hold("h1", 2)])
    assert isinstance(again, HoldGranted)
    assert again.hold_id == "h1"
    assert again.amount == 200
    assert recorded(store, "TicketsHeld") == 3, "no second hold"
    assert recorded(store, "RecordRestored") == 1
    agg = event_of(host)
    assert agg.bookings["h1"].status.value == "CONFIRMED"
    assert agg.tiers["std"].available == 7
    agg.check_invariants()
    [conflict] = await host.execute([hold("h2", 3)])
    assert isinstance(conflict, IdempotencyConflict), "an archived key used with another request"
    await host.stop()


async def test_an_archived_confirmed_booking_can_still_be_cancelled_and_its_tickets_come_back() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = await sold_and_archived(store, clock)
    [done] = await host.execute([CancelBooking("e1", "event", "h1", "changed my mind")])
    assert isinstance(done, Done)
    assert (done.status, done.changed) == ("CANCELLED", True)
    [again] = await host.execute([CancelBooking("e1", "event", "h1", "changed my mind")])
    assert isinstance(again, Done)
    assert not again.changed
    tier = event_of(host).tiers["std"]
    assert (tier.confirmed, tier.available) == (0, 9)
    event_of(host).check_invariants()
    [missing] = await host.execute([ConfirmBooking("e1", "event", "never-held")])
    assert isinstance(missing, BookingNotFound), "looked up, not archived: not found as before"
    await host.stop()


async def test_a_new_host_loading_a_snapshot_taken_after_archiving_still_knows_the_archived_keys() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    first = await sold_and_archived(store, clock)
    await first.execute([hold("h4")])  # a commit after archiving: snapshot_every=1 saves one
    snapshot = await store.load_snapshot("event/e1")
    assert snapshot is not None
    assert "h1" not in codec.decode(snapshot.state)[1][7], "the snapshot holds no archived booking"
    await first.stop()
    second = make_host(store, clock, owner="h2")
    [again, fresh] = await second.execute([hold("h1", 2), hold("h5")])
    assert isinstance(again, HoldGranted)
    assert again.hold_id == "h1"
    assert isinstance(fresh, HoldGranted)
    assert recorded(store, "TicketsHeld") == 5, "h1 was not sold twice; h4 and h5 were sold"
    agg = event_of(second)
    assert agg.tiers["std"].available == 10 - 2 - 1 - 1 - 1
    agg.check_invariants()
    await second.stop()


async def test_an_archive_that_cannot_be_read_answers_a_retryable_error_and_changes_nothing() -> None:
    class Unreadable(InMemoryEventStore):
        broken = False

        async def get(self, stream_id: str, keys: list[str]) -> dict[str, bytes]:  # type: ignore[override]
            if self.broken:
                raise ConnectionError("archive down")
            return await super().get(stream_id, keys)

    store, clock = Unreadable(), ManualClock()
    host = await sold_and_archived(store, clock)
    store.broken = True
    [answer] = await host.execute([hold("h1", 2)])
    assert getattr(answer, "retryable", False), answer
    assert recorded(store, "TicketsHeld") == 3
    store.broken = False
    [answer] = await host.execute([hold("h1", 2)])
    assert isinstance(answer, HoldGranted)
    await host.stop()


async def test_a_host_that_lost_the_entity_archives_nothing_and_keeps_its_records() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = make_host(store, clock)
    await host.execute([create(), hold("h1")])
    await host.execute([ConfirmBooking("e1", "event", "h1")])
    await store.claim("event/e1", host.entities["event/e1"].token + 1, "someone else")
    clock.advance(AFTER + 1)
    assert await host.upkeep.archive_settled() == 0
    assert await store.get("event/e1", ["h1"]) == {}
    await host.stop()


async def test_archived_payments_are_answered_as_decided_and_refunded_once() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = make_host(store, clock)
    await host.execute([Deposit("alice", "d1", 1_000)])
    paid = FromMessage("alice", "payments", "m1", Pay("alice", "s1", "event/e1", 300))
    failed = Pay("alice", "s2", "event/e1", 5_000)
    await host.execute([paid, failed])
    clock.advance(AFTER + 1)
    assert await host.upkeep.archive_settled() == 2
    wallet = host.entities["wallet/alice"].agg
    assert isinstance(wallet, Wallet)
    assert wallet.payments == {}
    wallet.check_invariants()
    [repeat] = await host.execute([Pay("alice", "s1", "event/e1", 300)])
    assert isinstance(repeat, Done)
    assert (repeat.status, repeat.changed) == ("SUCCEEDED", False)
    [refund, refund_again, not_charged] = await host.execute(
        [Refund("alice", "s1", "cancelled"), Refund("alice", "s1", "cancelled"), Refund("alice", "s2", "x")]
    )
    assert isinstance(refund, Done)
    assert (refund.status, refund.changed, refund.amount) == ("REFUNDED", True, 300)
    assert isinstance(refund_again, Done)
    assert not refund_again.changed
    assert isinstance(not_charged, Done)
    assert not_charged.status == "NOT_CHARGED"
    assert wallet.balance == 1_000
    assert wallet.view()["charges"] == 1
    wallet.check_invariants()
    await host.stop()


async def test_a_round_archives_in_writes_of_the_configured_size() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = make_host(store, clock, archive_batch=2, archive_rounds=2)
    await host.execute([create(), *(hold(f"h{i}") for i in range(5))])
    await host.execute([ReleaseHold("e1", "event", f"h{i}") for i in range(5)])
    clock.advance(AFTER + 1)
    assert await host.upkeep.archive_settled() == 4, "two writes of two"
    assert await host.upkeep.archive_settled() == 1
    assert event_of(host).bookings == {}
    await host.stop()


async def test_compaction_is_left_to_the_archive_when_it_takes_every_settled_record_first() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = await sold_and_archived(store, clock)
    assert not host.upkeep.compacts(), "the archive takes settled records long before the lifetime ends"
    clock.advance(86_400_000)
    assert host.upkeep.forget_settled() == 0
    [again] = await host.execute([hold("h2")])
    assert isinstance(again, HoldGranted)
    assert again.status is BookingStatus.RELEASED, "the archive still answers the ended booking's key"
    late = make_host(InMemoryEventStore(), clock, archive_after_ms=120_000, idempotency_ttl_ms=60_000)
    assert late.upkeep.compacts(), "records settled longer than the lifetime, not yet archived, are forgotten"
    unarchived = EntityHost(InMemoryEventStore(), InMemoryFencing(clock=clock), HostConfig(owner="h3"), clock)
    assert unarchived.upkeep.compacts()
    await host.stop()
    await late.stop()


async def test_the_archive_scan_stops_at_the_first_booking_too_young_to_have_settled() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = make_host(store, clock)
    await host.execute([create(), hold("old")])
    await host.execute([ConfirmBooking("e1", "event", "old", "pay-old")])
    clock.advance(AFTER)
    await host.execute([hold("young")])
    await host.execute([ConfirmBooking("e1", "event", "young", "pay-young")])
    clock.advance(1)
    agg = event_of(host)
    scanned: list[str] = []
    settled = agg._may_archive

    def spy(record: Any, settled_before: int) -> bool:
        scanned.append(record.hold_id)
        return settled(record, settled_before)

    agg._may_archive = spy  # type: ignore[method-assign]
    assert await host.upkeep.archive_settled() == 1
    assert set(agg.bookings) == {"young"}
    assert scanned == ["old"], "a booking that came in after the cut-off is not even looked at"
    clock.advance(AFTER)
    assert await host.upkeep.archive_settled() == 1
    assert agg.bookings == {}
    await host.stop()


def writes_take(store: InMemoryEventStore, clock: ManualClock, durations: Iterable[int]) -> None:
    """Each archive write moves the host's clock on by the next of `durations` (ms), as if it took that long."""
    put = store.put
    took = iter(durations)

    async def slow_put(stream_id: str, token: int, rows: Any) -> None:
        clock.advance(next(took))
        await put(stream_id, token, rows)

    store.put = slow_put  # type: ignore[method-assign]


async def test_the_archive_rests_between_its_writes_by_the_hosts_background_share() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = make_host(store, clock, archive_batch=2, archive_rounds=3)
    writes_take(store, clock, [4, 0, 1])  # ms
    shares: list[float] = []
    rests: list[float] = []

    async def rest_recorded(seconds: float) -> None:
        rests.append(seconds)
        clock.advance(round(seconds * 1000))

    def pacer() -> Pacer:
        shares.append(host.config.background_share)
        since = clock.now_ms()  # seconds from here, small enough to keep the milliseconds exact
        return Pacer(host.config.background_share, now=lambda: (clock.now_ms() - since) / 1000, sleep=rest_recorded)

    host.pacer = pacer  # type: ignore[method-assign]
    await host.execute([create(), *(hold(f"h{i}") for i in range(5))])
    await host.execute([ReleaseHold("e1", "event", f"h{i}") for i in range(5)])
    clock.advance(AFTER + 1)
    assert await host.upkeep.archive_settled() == 5, "three writes: two, two and one"
    assert shares == [0.5], "one pacer a round, at the default share"
    assert rests == pytest.approx([0.004, 0.0, 0.001]), "after each write, as long as it took"
    await host.stop()


async def test_an_archive_round_that_ran_its_time_leaves_the_rest_for_the_next_round() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = make_host(store, clock, archive_batch=2, archive_round_max_ms=1_000)
    writes_take(store, clock, itertools.repeat(600))  # 0.6 s of the round's second each
    await host.execute([create(), *(hold(f"h{i}") for i in range(5))])
    await host.execute([ReleaseHold("e1", "event", f"h{i}") for i in range(5)])
    clock.advance(AFTER + 1)
    assert await host.upkeep.archive_settled() == 4, "a second write began at 0.6 s, none at 1.2 s"
    assert len(event_of(host).bookings) == 1
    assert await host.upkeep.archive_settled() == 1, "the next round takes the rest"
    assert event_of(host).bookings == {}
    await host.stop()


async def test_the_entity_a_rounds_time_cut_short_goes_last_in_the_next_round_so_the_others_get_their_turn() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = make_host(store, clock, archive_batch=2, archive_round_max_ms=1_000)
    writes_take(store, clock, itertools.repeat(600))  # 0.6 s of the round's second each
    second = CreateEvent("e2", "Other show", "Hall", "2027-06-01T20:00:00+00:00", (TierSpec("std", 100, 10),))
    await host.execute([create(), second])
    await host.execute(
        [*(hold(f"a{i}") for i in range(5)), *(HoldTickets("e2", f"b{i}", "bob", (("std", 1),), TTL) for i in range(5))]
    )
    await host.execute(
        [
            *(ReleaseHold("e1", "event", f"a{i}") for i in range(5)),
            *(ReleaseHold("e2", "event", f"b{i}") for i in range(5)),
        ]
    )
    clock.advance(AFTER + 1)

    def left() -> tuple[int, int]:
        e1, e2 = host.entities["event/e1"].agg, host.entities["event/e2"].agg
        assert isinstance(e1, TicketedEvent)
        assert isinstance(e2, TicketedEvent)
        return len(e1.bookings), len(e2.bookings)

    assert await host.upkeep.archive_settled() == 4
    assert left() == (1, 5), "e1 first, cut short after two writes"
    assert await host.upkeep.archive_settled() == 4
    assert left() == (1, 1), "e2 first this time, e1 after it"
    assert await host.upkeep.archive_settled() == 2
    assert left() == (0, 0)
    await host.stop()
