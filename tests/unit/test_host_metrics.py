"""What the entity host counts for the metrics (per run of commands, not per command), the busiest
entities it keeps track of, and the stages it reports for a traced batch; the shard's metric
families built from those counts."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.core import Metric

from actors import process_metrics
from actors.shard_metrics import shard_families
from engine.adapters.memory_fencing import InMemoryFencing
from engine.adapters.memory_store import InMemoryEventStore
from engine.busiest import BusiestKeys
from engine.config import Settings
from engine.domain.errors import IdempotencyConflict, InsufficientInventory
from engine.domain.results import HoldGranted
from engine.hosting import EntityHost, HostConfig
from engine.ports import ManualClock
from tests.unit.test_archiving_host import hold as archived_hold
from tests.unit.test_archiving_host import recorded, sold_and_archived
from tests.unit.test_hosting import create, hold, make_host


def _values(families: list[Metric]) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(s.name, tuple(s.labels.values())): s.value for f in families for s in f.samples}


async def test_holds_granted_and_refused_by_reason_are_counted_per_run() -> None:
    host = make_host(InMemoryEventStore())
    await host.execute([create("e1", quantity=3)])
    replies = await host.execute([hold("h1"), hold("h2"), hold("h3"), hold("h4"), hold("h1")])
    assert isinstance(replies[3], InsufficientInventory)
    assert host.holds_granted == {"event": 3}  # the retry of h1 is answered again, not counted
    assert host.holds_refused == {("event", "sold-out"): 1}
    await host.stop()


async def test_the_busiest_entities_are_tracked_without_scanning_every_entity() -> None:
    host = make_host(InMemoryEventStore(), busiest=2)
    for eid in ("a", "b", "c"):
        await host.execute([create(eid, quantity=100)])
    await host.execute([hold(f"a{i}", eid="a") for i in range(20)] + [hold(f"b{i}", eid="b") for i in range(5)])
    assert [stream for stream, _ in host.busiest.top()] == ["event/a", "event/b"]
    await host.stop()


def test_busiest_keys_keep_the_top_and_let_a_newly_busy_key_in() -> None:
    busiest = BusiestKeys(2)
    for key, count in [("a", 10), ("b", 5), ("c", 1), ("d", 2)]:
        busiest.note(key, count)
    assert busiest.top() == [("a", 10), ("b", 5)]
    assert busiest.floor == 5  # pruned to the top 2 once 4 candidates were kept
    busiest.note("c", 3)  # still under the floor: one comparison, nothing kept
    assert "c" not in busiest.counts
    busiest.note("c", 50)
    assert busiest.top(1) == [("c", 50)]
    busiest.forget("c")
    busiest.forget("a")
    assert busiest.floor == 0  # room again for any key
    busiest.note("z", 1)
    assert dict(busiest.top()) == {"b": 5, "z": 1}


async def test_a_traced_batch_reports_its_stages_in_order() -> None:
    host = make_host(InMemoryEventStore())
    await host.execute([create("e1")])
    stages: dict[str, int] = {"received_ns": 0}
    await host.execute([hold("h1")], stages)
    assert stages["applied_ns"] <= stages["commit_started_ns"] <= stages["commit_ended_ns"] <= stages["durable_ns"]
    assert stages["commit_events"] == 1
    await host.stop()


@dataclass
class _Shard:
    host: EntityHost | None
    calls_in_progress: int = 0


async def test_the_shard_exports_its_host_counts_when_scraped() -> None:
    host = make_host(InMemoryEventStore())
    await host.execute([create("e1", quantity=1)])
    await host.execute([hold("h1"), hold("h2")])
    values = _values(list(shard_families(_Shard(host, calls_in_progress=3))))  # type: ignore[arg-type]
    assert values[("rezerv_holds_granted_total", ("event",))] == 1
    assert values[("rezerv_holds_refused_total", ("event", "sold-out"))] == 1
    assert values[("rezerv_entities_in_memory", ())] == 1
    assert values[("rezerv_entity_commands_total", ("event/e1",))] == 3
    assert values[("rezerv_shard_calls_in_progress", ())] == 3
    assert values[("rezerv_shard_commands_total", ())] == 3
    await host.stop()


async def test_a_hold_looked_up_in_the_archive_is_counted_once_when_it_runs_again() -> None:
    store, clock = InMemoryEventStore(), ManualClock()
    host = await sold_and_archived(store, clock)  # 3 holds granted, then h1 and h2 archived
    commands_before = host.entities["event/e1"].commands
    [again] = await host.execute([archived_hold("h1", 2)])  # a retry: the archived booking answers
    [conflict] = await host.execute([archived_hold("h2", 3)])  # the archived key with another request
    [new] = await host.execute([archived_hold("h9")])
    assert isinstance(again, HoldGranted)
    assert isinstance(conflict, IdempotencyConflict)
    assert isinstance(new, HoldGranted)
    assert host.holds_granted == {"event": 4}
    assert host.holds_refused == {("event", "idempotency-conflict"): 1}
    restores = recorded(store, "RecordRestored")
    assert host.entities["event/e1"].commands == commands_before + 3 + restores
    await host.stop()


async def test_a_host_with_metrics_off_counts_nothing_and_answers_the_same() -> None:
    store = InMemoryEventStore()
    host = EntityHost(store, InMemoryFencing(), HostConfig(owner="h1"), counting=False)
    host.start()
    await host.execute([create("e1", quantity=1)])
    replies = await host.execute([hold("h1"), hold("h2")])
    assert isinstance(replies[0], HoldGranted)
    assert isinstance(replies[1], InsufficientInventory)
    assert (host.holds_granted, host.holds_refused, host.busiest.top()) == ({}, {}, [])
    assert host.entities["event/e1"].commands == 0
    await host.stop()


def test_a_process_with_metrics_off_serves_no_endpoint_and_registers_no_source() -> None:
    try:
        assert process_metrics.start(Settings(metrics=False)) is None
        process_metrics.register_source("test-off", lambda: iter([process_metrics.counter("rezerv_x", "x", 1)]))
        assert "test-off" not in process_metrics._SOURCES.sources
    finally:
        process_metrics.ENABLED = True
        process_metrics.unregister_source("test-off")
