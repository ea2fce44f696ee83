"""One trace per booking (engine/tracing.py): the hold request on the hot path, the engine call
with the shard's stages, the relay's publish with a traceparent header, a consumer's handling,
all under the trace id computed from the hold id; `rezerv trace`'s timeline; and nothing traced,
propagated or asked of the shard when tracing is off."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from engine import tracing
from engine.adapters.kafka_consumer import decode_batch
from engine.adapters.memory_log import InMemoryLogReader
from engine.config import Settings
from engine.outbox import OutgoingMessage
from engine.relay import OutboxRelay
from stack.trace_cli import read_spans, timeline
from tests.unit.api.conftest import Api, api_over, event_body
from tests.unit.local_shard import LocalInventory, local_inventory


class Publisher:
    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        self.sent.extend(messages)


@pytest.fixture
def traced_settings(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    yield settings.replace(trace_sample=1.0, trace_dir=str(tmp_path / "traces"))
    tracing.configure(0.0, "off")


@pytest.fixture
async def traced(traced_settings: Settings) -> AsyncIterator[tuple[Api, LocalInventory]]:
    inventory = local_inventory()
    yield api_over(traced_settings, inventory), inventory
    await inventory.stop()


async def _book(api: Api) -> str:
    reply = await api.http.post("/events", json=event_body("gala"), headers=api.admin)
    assert reply.status == 201
    reply = await api.hold_tickets("gala", {"standard": 1}, "key-1")
    assert reply.status == 201, reply.body
    return str(reply.json()["hold_id"])


def _by_name(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in spans}


async def test_a_booking_is_one_trace_from_the_request_through_the_relay_and_a_consumer(
    traced: tuple[Api, LocalInventory], traced_settings: Settings
) -> None:
    api, inventory = traced
    hold_id = await _book(api)

    publisher = Publisher()
    relay = OutboxRelay(InMemoryLogReader(inventory.store), publisher)
    await relay.run_once()
    [held] = [m for m in publisher.sent if dict(m.headers)["type"] == b"TicketsHeld"]
    assert tracing.TRACEPARENT in dict(held.headers)
    now_ns = time.time_ns()
    record = ConsumerRecord("bookings", 0, 0, now_ns // 10**6, 0, held.key, held.value, None, 0, 0, list(held.headers))
    batch = decode_batch({TopicPartition("bookings", 0): [record]})
    assert [d.event_type for d in batch.delivered] == ["TicketsHeld"]
    tracing.record_consumed(
        "payment-worker", "bookings", batch.delivered, now_ns + 10**6, now_ns + 2 * 10**6, now_ns + 5 * 10**6
    )
    tracing.flush()

    trace_id = tracing.trace_id_hex(hold_id)
    spans = read_spans(traced_settings.traces_path, trace_id)
    named = _by_name(spans)
    root = named["POST /events/{event_id}/holds"]
    assert root["parent_id"] is None
    assert root["span_id"] == f"{tracing.booking_ids(hold_id)[1]:016x}"
    call = named["engine call"]
    assert call["parent_id"] == root["span_id"]
    assert named["shard apply"]["parent_id"] == call["span_id"]
    assert named["group commit"]["parent_id"] == call["span_id"]
    relayed = named["outbox relay TicketsHeld"]
    assert relayed["parent_id"] == root["span_id"]  # found from the hold id alone
    assert named["kafka bookings -> payment-worker"]["parent_id"] == relayed["span_id"]  # from the header
    assert named["payment-worker TicketsHeld"]["parent_id"] == relayed["span_id"]
    assert {s["trace_id"] for s in spans} == {trace_id}
    assert root["start_ns"] <= call["start_ns"] <= named["group commit"]["start_ns"] <= call["end_ns"]

    lines = timeline(hold_id, spans)
    assert lines[0].startswith(f"booking {hold_id}  trace {trace_id}  {len(spans)} spans")
    assert float(lines[0].split(" over ")[1].split(" ms")[0]) < 60_000
    order = [next(i for i, line in enumerate(lines) if f" {name}" in line) for name in ("POST /events", "engine call")]
    assert order == sorted(order)
    assert any("    shard apply" in line for line in lines)  # indented under the engine call


async def test_sampling_decides_the_same_way_from_the_hold_id_alone() -> None:
    tracing.configure(0.5, "sampling", trace_dir=Path("/nonexistent"))
    try:
        decisions = {f"hold-{i}": tracing.is_sampled(f"hold-{i}") for i in range(2_000)}
        again = {hold: tracing.is_sampled(hold) for hold in decisions}
    finally:
        tracing.configure(0.0, "off")
    assert decisions == again
    assert 800 < sum(decisions.values()) < 1_200


async def test_with_tracing_off_nothing_is_traced_and_the_shard_is_not_asked_for_its_stages(api: Api) -> None:
    assert not tracing.ENABLED
    calls: list[tuple[Any, ...]] = []
    shard = api.inventory.shards[0]
    original = shard.call.remote

    def spy(payload: bytes, *args: Any) -> Any:
        calls.append(args)
        return original(payload, *args)

    for one in api.inventory.shards:
        one.call.remote = spy  # type: ignore[method-assign]
    await _book(api)
    assert calls
    assert all(args == () for args in calls)
    assert not tracing.is_sampled("anything")


def test_a_retried_request_shows_once_with_its_children_under_the_first() -> None:
    root = {"span_id": "r", "parent_id": None, "name": "POST", "start_ns": 0, "end_ns": 10, "service": "api"}
    retry = {**root, "start_ns": 50, "end_ns": 60}
    child = {"span_id": "c", "parent_id": "r", "name": "engine call", "start_ns": 1, "end_ns": 9, "service": "api"}
    lines = timeline("h", [root, retry, child])
    assert len(lines) == 2 + 3
    assert [line.split()[-1] for line in lines[2:]] == ["POST", "call", "POST"]
