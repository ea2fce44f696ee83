"""The entity host on in-memory fakes: durability before answers, failures leave nothing granted,
fencing between two hosts, idempotent retries, snapshots, passivation."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from engine.adapters.memory_fencing import InMemoryFencing
from engine.adapters.memory_store import InMemoryEventStore
from engine.domain import codec
from engine.domain.aggregate import BookingHost
from engine.domain.commands import (
    Command,
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
from engine.domain.entities import decode_snapshot
from engine.domain.errors import InsufficientInventory, OwnershipLost, StoreUnavailable, TransientError
from engine.domain.results import Done, HoldGranted, Reply, StateView
from engine.hosting import EntityHost, HostConfig
from engine.pacing import Pacer
from engine.ports import AppendResult, ManualClock, RecordedEvent, StreamAppend, Turn
from tests.replies import as_done, as_error, as_view

TTL = 60_000


@dataclass
class GatedStore(InMemoryEventStore):
    """Appends wait until the test opens the gate; lets a test hold a commit in flight."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def append(self, appends: Sequence[StreamAppend], turn: Turn | None = None) -> AppendResult:
        self.entered.set()
        await self.gate.wait()
        return await super().append(appends, turn)


def make_host(
    store: InMemoryEventStore,
    fencing: InMemoryFencing | None = None,
    owner: str = "h1",
    clock: ManualClock | None = None,
    **config: int,
) -> EntityHost:
    clock = clock or ManualClock()
    host = EntityHost(store, fencing or InMemoryFencing(clock=clock), HostConfig(owner=owner, **config), clock)
    host.start()
    return host


async def commit_in_flight(
    *commands: Command, quantity: int = 10, fail: int = 0, commits_in_flight: int = 1
) -> tuple[GatedStore, EntityHost, asyncio.Task[list[Reply]]]:
    """A host whose event exists, and `commands` being executed with their group commit held at
    the store's gate (the next `fail` appends fail once the gate opens)."""
    store = GatedStore()
    store.gate.set()
    host = make_host(store, commits_in_flight=commits_in_flight)
    await host.execute([create(quantity=quantity)])
    store.gate.clear()
    store.entered.clear()
    store.fail_next_appends = fail
    task = asyncio.create_task(host.execute(list(commands)))
    await store.entered.wait()
    return store, host, task


def create(eid: str = "e1", quantity: int = 10) -> CreateEvent:
    return CreateEvent(
        eid, "Show", "Hall", "2027-06-01T20:00:00+00:00", (TierSpec("std", 100, quantity),)
    )  # after ManualClock's now


def hold(hold_id: str, n: int = 1, eid: str = "e1") -> HoldTickets:
    return HoldTickets(eid, hold_id, "alice", (("std", n),), TTL)


def held_in_store(store: InMemoryEventStore, stream: str = "event/e1") -> int:
    total = 0
    for recorded in store.streams.get(stream, []):
        event = codec.decode_record(recorded.data)
        if recorded.event_type == "TicketsHeld":
            total += sum(n for _, n in event.quantities)
    return total


async def test_answers_only_after_the_events_are_durable() -> None:
    store, host, task = await commit_in_flight(hold("h1", 2), hold("h2", 3))
    await asyncio.sleep(0.01)
    assert not task.done(), "answered before the commit finished"
    store.gate.set()
    replies = await task
    assert [type(r) for r in replies] == [HoldGranted, HoldGranted]
    assert held_in_store(store) == 5
    await host.stop()


async def test_a_batch_is_one_commit_and_refusals_are_answered_too() -> None:
    store = InMemoryEventStore()
    host = make_host(store)
    await host.execute([create(quantity=3)])
    calls = store.append_calls
    replies = await host.execute([hold(f"h{i}") for i in range(5)])
    assert [type(r).__name__ for r in replies] == ["HoldGranted"] * 3 + ["InsufficientInventory"] * 2
    assert store.append_calls == calls + 1
    await host.stop()


async def test_a_failed_commit_grants_nothing_and_the_entity_is_rebuilt() -> None:
    store = InMemoryEventStore()
    host = make_host(store)
    await host.execute([create(quantity=5)])
    store.fail_next_appends = 1
    replies = await host.execute([hold("h1", 5)])
    assert isinstance(replies[0], StoreUnavailable)
    assert "event/e1" not in host.entities, "the entity must be dropped from memory"
    assert held_in_store(store) == 0
    # Rebuilt from the store: all 5 tickets are still there.
    [again] = await host.execute([hold("h2", 5)])
    assert isinstance(again, HoldGranted)
    await host.stop()


async def test_events_decided_on_top_of_a_failed_commit_are_dropped_too() -> None:
    store, host, first = await commit_in_flight(hold("h1", 2), quantity=4, fail=1)  # h1's commit will fail
    second = asyncio.create_task(host.execute([hold("h2", 2), hold("h3", 1)]))  # h3 sold out only if h1, h2 count
    await asyncio.sleep(0.01)
    store.gate.set()
    assert isinstance((await first)[0], StoreUnavailable)
    r2 = await second
    # Dropped from the queue (StoreUnavailable) or, if its commit was already in flight, refused by
    # the store because the stream is not at the version it expects (ConcurrencyConflict).
    assert all(isinstance(r, TransientError) for r in r2), r2
    assert held_in_store(store) == 0
    replies = await host.execute([hold("h4", 4)])
    assert isinstance(replies[0], HoldGranted)
    await host.stop()


async def test_a_retry_while_the_first_attempt_is_in_flight_gets_the_same_durable_answer() -> None:
    store, host, first = await commit_in_flight(hold("h1", 2))
    retry = asyncio.create_task(host.execute([hold("h1", 2)]))
    await asyncio.sleep(0.01)
    assert not retry.done(), "the retry must wait for the first attempt's commit"
    store.gate.set()
    assert (await first) == (await retry)
    assert held_in_store(store) == 2
    await host.stop()


@dataclass
class LoadGatedStore(InMemoryEventStore):
    """Loading a stream's events waits, once read, until the test opens the gate."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    loading: asyncio.Event = field(default_factory=asyncio.Event)
    claims: int = 0

    async def claim(self, stream_id: str, token: int, owner: str):  # type: ignore[no-untyped-def]
        self.claims += 1
        return await super().claim(stream_id, token, owner)

    async def load(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        events = await super().load(stream_id, after_version)
        self.loading.set()
        await self.gate.wait()
        return events


async def test_a_batch_that_found_the_entity_missing_as_its_load_finished_uses_that_load() -> None:
    # A restarted shard: the stream exists, and the first batches after the restart all find it
    # missing. The second batch checks just before the first one's load is adopted, and starts
    # its own activation just after: it must take the adopted entity, not claim the stream again
    # (a second claim fences this host's own first commit and locks the stream out for a lease).
    store = LoadGatedStore()
    await make_host(store, owner="crashed").execute([create()])
    store.claims = 0
    host = make_host(store, owner="restarted")
    first = asyncio.create_task(host.execute([hold("a")]))
    await store.loading.wait()
    second = asyncio.create_task(host.execute([hold("b")]))  # runs its check before the load ends
    store.gate.set()
    assert isinstance((await first)[0], HoldGranted)
    assert isinstance((await second)[0], HoldGranted)
    assert store.claims == 1
    assert isinstance((await host.execute([hold("c")]))[0], HoldGranted)
    assert held_in_store(store) == 3
    await host.stop()


async def test_a_read_that_probed_the_store_while_a_hold_loaded_the_entity_uses_that_load() -> None:
    class SlowFirstProbe(InMemoryEventStore):
        """The first look at a stream's token waits for the test, as a round trip lets others run."""

        gate = asyncio.Event()
        waiting = asyncio.Event()
        claims = 0

        async def current_token(self, stream_id: str) -> int:
            if not self.waiting.is_set():
                self.waiting.set()
                await self.gate.wait()
            return await super().current_token(stream_id)

        async def claim(self, stream_id: str, token: int, owner: str):  # type: ignore[no-untyped-def]
            self.claims += 1
            return await super().claim(stream_id, token, owner)

    store = SlowFirstProbe()
    SlowFirstProbe.waiting.set()
    await make_host(store, owner="crashed").execute([create()])
    SlowFirstProbe.waiting.clear()
    store.claims = 0
    host = make_host(store, owner="restarted")
    read = asyncio.create_task(host.execute([GetState("e1", "event")]))  # probes: may not create
    await SlowFirstProbe.waiting.wait()
    assert isinstance((await host.execute([hold("a")]))[0], HoldGranted)  # loads it meanwhile
    SlowFirstProbe.gate.set()
    view = as_view((await read)[0])
    assert view.state["tiers"][0]["held"] == 1  # the entity the hold loaded, its hold included
    assert store.claims == 1, "the read must take the hold's load, not claim the stream again"
    await host.stop()


async def test_a_commit_fenced_by_this_hosts_own_newer_load_leaves_that_load_in_place() -> None:
    # The entity is dropped while a commit of it is in flight (as a bug in a handler drops it),
    # and the next command loads it again under a newer token. The old commit is then fenced:
    # its holds are not granted, but the new entity stays, and nothing is locked out for a lease.
    store, host, in_flight = await commit_in_flight(hold("a"))
    old_token = host.entities["event/e1"].token
    host.evict("event/e1", StoreUnavailable("internal error"))
    after = asyncio.create_task(host.execute([hold("b")]))
    await asyncio.sleep(0.01)
    assert host.entities["event/e1"].token > old_token
    store.gate.set()
    assert isinstance((await in_flight)[0], OwnershipLost)
    assert isinstance((await after)[0], HoldGranted)
    assert isinstance((await host.execute([hold("c")]))[0], HoldGranted)
    assert held_in_store(store) == 2
    await host.stop()


async def test_two_hosts_one_entity_only_the_newest_writes_and_nothing_is_oversold() -> None:
    store = InMemoryEventStore()
    clock = ManualClock()
    fencing = InMemoryFencing(clock=clock)
    old = make_host(store, fencing, owner="old", clock=clock)
    new = make_host(store, fencing, owner="new", clock=clock)
    await old.execute([create(quantity=3)])
    assert isinstance((await old.execute([hold("a1")]))[0], HoldGranted)
    # The new host activates the same entity: it takes a newer token and claims the stream.
    assert isinstance((await new.execute([hold("b1")]))[0], HoldGranted)
    stale = await old.execute([hold("a2")])
    assert isinstance(stale[0], OwnershipLost)
    assert "event/e1" not in old.entities
    # The old host does not steal the entity back while the new one's lease runs.
    assert isinstance((await old.execute([hold("a3")]))[0], OwnershipLost)
    results = await new.execute([hold(f"b{i}") for i in range(2, 6)])
    granted = sum(isinstance(r, HoldGranted) for r in results)
    assert granted == 1
    assert sum(isinstance(r, InsufficientInventory) for r in results) == 3
    assert held_in_store(store) == 3
    await old.stop()
    await new.stop()


async def test_lease_renewal_notices_a_takeover() -> None:
    store = InMemoryEventStore()
    clock = ManualClock()
    fencing = InMemoryFencing(clock=clock)
    a = make_host(store, fencing, owner="a", clock=clock)
    b = make_host(store, fencing, owner="b", clock=clock)
    await a.execute([create()])
    await b.execute([GetState("e1", "event")])
    assert await a.upkeep.renew_leases() == ["event/e1"]
    assert "event/e1" not in a.entities
    assert await b.upkeep.renew_leases() == []
    await a.stop()
    await b.stop()


async def test_a_renewal_overtaken_by_this_hosts_own_newer_load_keeps_that_load() -> None:
    class SlowRenewal(InMemoryFencing):
        """Renewals wait for the test, as a Redis round trip lets other work run meanwhile."""

        gate = asyncio.Event()

        async def renew(self, leases, owner, lease_ms):  # type: ignore[no-untyped-def]
            await self.gate.wait()
            return await super().renew(leases, owner, lease_ms)

    clock = ManualClock()
    host = make_host(InMemoryEventStore(), SlowRenewal(clock=clock), clock=clock)
    await host.execute([create()])
    renewal = asyncio.create_task(host.upkeep.renew_leases())
    await asyncio.sleep(0)
    host.evict("event/e1", StoreUnavailable("internal error"))  # dropped, then loaded again
    assert isinstance((await host.execute([hold("a")]))[0], HoldGranted)
    SlowRenewal.gate.set()
    assert await renewal == ["event/e1"]  # the old token's lease is gone: this host replaced it
    assert "event/e1" in host.entities
    assert isinstance((await host.execute([hold("b")]))[0], HoldGranted)
    await host.stop()


async def test_a_big_snapshot_is_encoded_in_pieces_while_the_host_goes_on_answering() -> None:
    store = InMemoryEventStore()
    clock = ManualClock()
    saved: list[int] = []
    original_save = store.save_snapshot_in_parts

    async def spy(stream_id: str, version: int, parts: Sequence[bytes]) -> None:
        assert len(parts) == 39 + 3, "each piece is handed to the store as it is (and the state around them)"
        saved.append(version)
        await original_save(stream_id, version, parts)

    store.save_snapshot_in_parts = spy  # type: ignore[method-assign]
    host = make_host(store, clock=clock, snapshot_every=40, snapshot_min_interval_ms=0, snapshot_piece=1)
    await host.execute([create(quantity=100)])
    for i in range(39):  # the 40th event makes a snapshot of 39 bookings due: 39 pieces of one
        await host.execute([hold(f"h{i}")])
    agg = host.entities["event/e1"].agg
    assert isinstance(agg, BookingHost)
    assert agg.pre_images is not None, "the snapshot is being encoded"
    [done] = await host.execute([ConfirmBooking("e1", "event", "h0")])
    assert as_done(done).status == "CONFIRMED"
    assert saved == [], "a command was answered only after the whole snapshot was encoded"
    for _ in range(100):
        if saved:
            break
        await asyncio.sleep(0)
    assert saved == [40]
    assert agg.pre_images is None
    snap = await store.load_snapshot("event/e1")
    assert snap is not None
    restored = decode_snapshot("event/e1", snap.version, snap.state)
    assert isinstance(restored, BookingHost)
    assert restored.bookings["h0"].status.value == "HELD", "the snapshot is the state at its version"
    fresh = make_host(store, InMemoryFencing(clock=clock), owner="h2", clock=clock)
    [view] = await fresh.execute([GetState("e1", "event")])
    assert as_view(view).version == 41
    assert as_view(view).state["tiers"][0]["confirmed"] == 1
    await host.stop()
    await fresh.stop()


async def test_a_big_snapshots_pieces_are_encoded_with_a_rest_after_each_by_the_background_share() -> None:
    store = InMemoryEventStore()
    clock = ManualClock()
    host = make_host(store, clock=clock, snapshot_every=10, snapshot_min_interval_ms=0, snapshot_piece=2)
    rests: list[float] = []

    async def rest_recorded(seconds: float) -> None:
        rests.append(seconds)
        await asyncio.sleep(0)

    ticks = itertools.count()  # a clock that moves 1 ms each time it is read: each piece "takes" 1 ms
    host.pacer = lambda: Pacer(  # type: ignore[method-assign]
        host.config.background_share, now=lambda: next(ticks) / 1000, sleep=rest_recorded
    )
    await host.execute([create(quantity=100)])
    for i in range(9):  # the 10th event makes a snapshot of 9 bookings due: 5 pieces of at most 2
        await host.execute([hold(f"h{i}")])
    for _ in range(100):
        if await store.load_snapshot("event/e1") is not None:
            break
        await asyncio.sleep(0)
    assert host.config.background_share == 0.5
    assert len(rests) == 5, "one rest after each piece"
    assert rests == pytest.approx([0.001] * 5), "at half the time, as long as the piece took"
    snap = await store.load_snapshot("event/e1")
    assert snap is not None
    assert snap.version == 10
    await host.stop()


async def test_snapshot_is_taken_and_used_on_activation() -> None:
    store = InMemoryEventStore()
    clock = ManualClock()
    host = make_host(store, clock=clock, snapshot_every=5, snapshot_min_interval_ms=0)
    await host.execute([create(quantity=100)])
    for i in range(6):
        await host.execute([hold(f"h{i}")])
    await asyncio.sleep(0)
    snap = await store.load_snapshot("event/e1")
    assert snap is not None
    assert snap.version == 5
    loads: list[int] = []
    original_load = store.load

    async def spy(stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        loads.append(after_version)
        return await original_load(stream_id, after_version)

    store.load = spy  # type: ignore[method-assign]
    fresh = make_host(store, InMemoryFencing(clock=clock), owner="h2", clock=clock)
    [view] = await fresh.execute([GetState("e1", "event")])
    assert loads == [5], "activation must start from the snapshot"
    assert isinstance(view, StateView)
    assert view.version == 7
    assert view.state["tiers"][0]["held"] == 6
    await host.stop()
    await fresh.stop()


async def test_idle_entities_are_passivated_and_come_back_intact() -> None:
    store = InMemoryEventStore()
    clock = ManualClock()
    host = make_host(store, clock=clock, passivate_after_ms=1000)
    await host.execute([create(), hold("h1", 3)])
    await host.execute([ConfirmBooking("e1", "event", "h1")])  # no live hold left: nothing keeps it in memory
    clock.advance(2000)
    assert await host.upkeep.passivate_idle() == ["event/e1"]
    assert host.entities == {}
    [view] = await host.execute([GetState("e1", "event")])
    assert as_view(view).state["tiers"][0]["confirmed"] == 3
    await host.stop()


async def test_unknown_entity_and_bad_stream() -> None:
    host = make_host(InMemoryEventStore())
    [missing] = await host.execute([hold("h1", eid="nope")])
    assert as_error(missing).code == "not-found"
    [done] = await host.execute([create("new")])
    assert isinstance(done, Done)
    await host.stop()


@pytest.mark.parametrize("callers", [50])
async def test_many_concurrent_batches_never_oversell(callers: int) -> None:
    store = InMemoryEventStore()
    host = make_host(store)
    await host.execute([create(quantity=37)])

    async def caller(i: int) -> int:
        replies = await host.execute([hold(f"c{i}-{j}") for j in range(3)])
        return sum(isinstance(r, HoldGranted) for r in replies)

    granted = sum(await asyncio.gather(*(caller(i) for i in range(callers))))
    assert granted == 37
    assert held_in_store(store) == 37
    await host.stop()


async def test_reads_and_refusals_for_unknown_ids_write_nothing() -> None:
    store = InMemoryEventStore()
    host = make_host(store)
    replies = await host.execute([hold("h1", eid="ghost"), GetState("ghost", "event")])
    assert as_error(replies[0]).code == "not-found"
    assert as_view(replies[1]).version == 0
    assert store.heads == {}, "no stream head may be written for an entity that does not exist"
    assert host.entities == {}
    # A creator in the same batch claims the stream and the hold after it succeeds.
    replies = await host.execute([create("ghost"), hold("h2", eid="ghost")])
    assert isinstance(replies[1], HoldGranted)
    assert "event/ghost" in store.heads
    await host.stop()


async def test_a_command_for_a_malformed_stream_is_refused_alone() -> None:
    host = make_host(InMemoryEventStore())
    await host.execute([create()])
    replies = await host.execute([GetState("x", "planet"), hold("h1")])
    assert as_error(replies[0]).code == "invalid-command"
    assert isinstance(replies[1], HoldGranted)
    await host.stop()


async def test_two_commits_in_flight_keep_each_stream_in_order() -> None:
    """With two group commits in flight, a stream's second group lands after its first, always."""
    store, host, first = await commit_in_flight(*(hold(f"a{i}") for i in range(5)), quantity=1000, commits_in_flight=2)
    second = asyncio.create_task(host.execute([hold(f"b{i}") for i in range(5)]))
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(host.committer.in_flight) == 2, "the second group should be committing alongside the first"
    store.gate.set()
    assert all(isinstance(r, HoldGranted) for r in [*(await first), *(await second)])
    versions = [e.version for e in store.streams["event/e1"]]
    assert versions == list(range(1, 12))
    await host.stop()


async def test_a_command_from_a_message_records_the_message_with_its_events() -> None:
    store = InMemoryEventStore()
    host = make_host(store)
    await host.execute([create()])
    first = await host.execute([FromMessage("e1", "payments", "event/e1@7", hold("h1"))])
    assert isinstance(first[0], HoldGranted)
    assert await store.processed("payments", ["event/e1@7"]) == {"event/e1@7"}
    # A refusal changes nothing, so nothing is recorded for its message.
    await host.execute([FromMessage("e1", "payments", "m-refused", hold("h2", n=99))])
    assert await store.processed("payments", ["m-refused"]) == set()
    await host.stop()


async def test_payment_decisions_are_recorded_once_in_the_wallet() -> None:
    store = InMemoryEventStore()
    host = make_host(store)
    await host.execute([Deposit("alice", "d1", 500)])
    paid = as_done((await host.execute([Pay("alice", "h1", "event/e1", 500)]))[0])
    assert (paid.status, paid.changed) == ("SUCCEEDED", True)
    await host.execute([Deposit("alice", "d2", 10)])
    again = as_done((await host.execute([Pay("alice", "h1", "event/e1", 500)]))[0])
    assert (again.status, again.changed) == ("SUCCEEDED", False), "the first decision stands"
    refund = as_done((await host.execute([Refund("alice", "h1", "expired")]))[0])
    assert refund.status == "REFUNDED"
    types = [e.event_type for e in store.streams["wallet/alice"]]
    assert types == ["FundsDeposited", "PaymentSucceeded", "FundsDeposited", "PaymentRefunded"]
    await host.stop()


async def test_a_payment_for_a_customer_without_a_wallet_fails_and_creates_the_wallet() -> None:
    store = InMemoryEventStore()
    host = make_host(store)
    failed = as_done((await host.execute([Pay("nobody", "h1", "event/e1", 500)]))[0])
    assert (failed.status, failed.changed) == ("FAILED", True)
    assert [e.event_type for e in store.streams["wallet/nobody"]] == ["PaymentFailed"]
    await host.stop()


async def test_holds_expire_on_time_and_release_their_stock() -> None:
    store = InMemoryEventStore()
    clock = ManualClock()
    host = make_host(store, clock=clock)
    await host.execute([create(quantity=2), hold("h1", 2)])
    await host.execute([create("e2", 1)])
    await host.execute([hold("c1", 1, eid="e2")])
    await host.execute([ConfirmBooking("e2", "event", "c1")])
    clock.advance(TTL - 1)
    assert await host.upkeep.expire_due() == 0
    clock.advance(1500)
    assert await host.upkeep.expire_due() == 1, "h1 expires; c1 was confirmed and must not"
    [view] = await host.execute([GetState("e1", "event")])
    assert as_view(view).state["tiers"][0]["available"] == 2
    await host.stop()


async def test_timers_are_rearmed_when_an_entity_is_loaded_again() -> None:
    store = InMemoryEventStore()
    clock = ManualClock()
    first = make_host(store, clock=clock, owner="first")
    await first.execute([create(quantity=3), hold("h1", 3)])
    await first.stop()
    second = make_host(store, InMemoryFencing(clock=clock), owner="second", clock=clock)
    await second.execute([GetState("e1", "event")])  # activation re-arms h1's timer
    clock.advance(TTL + 1000)
    assert await second.upkeep.expire_due() == 1
    expired = [r for r in store.streams["event/e1"] if r.event_type == "HoldExpired"]
    assert len(expired) == 1
    await second.stop()


async def test_an_entity_with_live_holds_is_not_passivated() -> None:
    store = InMemoryEventStore()
    clock = ManualClock()
    host = make_host(store, clock=clock, passivate_after_ms=1000)
    await host.execute([create(), hold("h1")])
    clock.advance(2000)
    assert await host.upkeep.passivate_idle() == []
    await host.stop()


# ---- runs: consecutive holds for one entity go to TicketedEvent.hold_run in one call ------------
async def test_runs_interleaved_across_entities_answer_in_order_and_store_in_order() -> None:
    store = InMemoryEventStore()
    clock = ManualClock()
    host = make_host(store, clock=clock)
    await host.execute([create("e1", 3), create("e2", 2)])
    batch = [
        hold("a1", eid="e1"),
        hold("a2", eid="e1"),
        hold("b1", eid="e2"),
        GetState("e1", "event"),
        hold("a3", eid="e1"),
        hold("a4", eid="e1"),  # sold out: e1 has 3
        hold("b2", 2, eid="e2"),  # sold out: e2 has 1 left
        hold("a1", eid="e1"),  # a retry: the first answer again
    ]
    replies = await host.execute(batch)
    assert [type(r).__name__ for r in replies] == [
        "HoldGranted",
        "HoldGranted",
        "HoldGranted",
        "StateView",
        "HoldGranted",
        "InsufficientInventory",
        "InsufficientInventory",
        "HoldGranted",
    ]
    assert as_view(replies[3]).state["tiers"][0]["held"] == 2, "the read sees the holds before it in the batch"
    assert replies[7] == replies[0]
    e1 = [codec.decode_record(r.data) for r in store.streams["event/e1"]]
    assert [(r.version, getattr(e, "hold_id", None)) for r, e in zip(store.streams["event/e1"], e1, strict=True)] == [
        (1, None),
        (2, "a1"),
        (3, "a2"),
        (4, "a3"),
    ]
    assert held_in_store(store, "event/e2") == 1
    clock.advance(TTL + 1000)
    assert await host.upkeep.expire_due() == 4, "every hold granted in a run has its expiry timer"
    await host.stop()


async def test_a_bug_in_a_run_keeps_nothing_of_it_and_the_entity_is_rebuilt(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.domain.tickets import TicketedEvent

    store = InMemoryEventStore()
    host = make_host(store)
    await host.execute([create(quantity=5), hold("h0")])
    real = TicketedEvent.hold_run

    def broken(self: TicketedEvent, commands: Sequence[HoldTickets], now: int) -> object:
        real(self, commands[:1], now)  # changes memory, then fails
        raise RuntimeError("bug")

    monkeypatch.setitem(TicketedEvent.run_handlers, HoldTickets, broken)
    replies = await host.execute([hold("h1"), hold("h2")])
    assert [as_error(r).code for r in replies] == ["invalid-command", "invalid-command"]
    assert "event/e1" not in host.entities, "memory that may hold unstored changes is dropped"
    monkeypatch.setitem(TicketedEvent.run_handlers, HoldTickets, real)
    [view] = await host.execute([GetState("e1", "event")])
    assert as_view(view).state["tiers"][0]["held"] == 1, "rebuilt from the store: only h0"
    assert held_in_store(store) == 1
    await host.stop()


async def test_listeners_get_every_event_object_so_holds_take_the_single_path() -> None:
    store = InMemoryEventStore()
    host = make_host(store)
    seen: list[str] = []
    host.listeners.append(lambda stream, agg, events: seen.extend(type(e).__name__ for e in events))
    await host.execute([create(quantity=5), hold("h1"), hold("h2"), hold("h3", 9)])
    assert seen == ["EventCreated", "TicketsHeld", "TicketsHeld"]
    await host.stop()


async def test_what_no_decision_needs_leaves_memory_after_the_idempotency_lifetime() -> None:
    store = InMemoryEventStore()
    clock = ManualClock()
    host = make_host(store, clock=clock, idempotency_ttl_ms=60_000)
    await host.execute([create(quantity=10), hold("ended", 1), hold("kept", 1)])
    await host.execute([ReleaseHold("e1", "event", "ended", "released by customer")])
    await host.execute([ConfirmBooking("e1", "event", "kept", payment_ref="p")])
    await host.execute([Deposit("alice", "d1", 100), Pay("alice", "too-dear", "event/e1", 5_000)])
    clock.advance(30_000)
    assert host.upkeep.forget_settled() == 0, "within the lifetime a retry must still find them"
    clock.advance(31_000)
    assert host.upkeep.forget_settled() == 2
    bookings = host.entities["event/e1"].agg.bookings  # type: ignore[attr-defined]
    assert set(bookings) == {"kept"}, "a confirmed booking may still be cancelled"
    assert host.entities["wallet/alice"].agg.payments == {}  # type: ignore[attr-defined]
    [again] = await host.execute([hold("ended", 1)])
    assert isinstance(again, HoldGranted), "past its lifetime a key is answered as new"
    await host.stop()
