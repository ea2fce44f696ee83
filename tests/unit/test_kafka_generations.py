"""Topic generations without a broker: which generations a consumer reads, when it lets one go,
and which ones are deleted (engine/adapters/kafka_generations.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass, field

from engine.adapters.kafka_generations import (
    FETCH_EARLY_MS,
    GenerationalConsumer,
    fetch_from_s,
    generation_group,
    generations_on_broker,
    may_be_drained,
    retire_generations,
    wanted_generations,
)
from engine.adapters.memory_generations import InMemoryGenerationRegistry
from engine.outbox import generation_at, generation_topic, split_generation

P = 60_000  # a generation's period


def test_generation_names_round_trip() -> None:
    assert generation_topic("bookings", 7) == "bookings.g7"
    assert generation_topic("bookings", None) == "bookings"
    assert split_generation("pre-bookings.g7") == ("pre-bookings", 7)
    assert split_generation("bookings") is None
    assert split_generation("bookings.gx") is None
    assert generation_group("payment-worker", 3) == "payment-worker.g3"


def test_a_consumer_reads_now_and_the_next_generation_shortly_before_it_begins() -> None:
    assert wanted_generations(10 * P + 1_000, P, lead_ms=20_000) == {10}
    assert wanted_generations(11 * P - 19_000, P, lead_ms=20_000) == {10, 11}
    assert generation_at(11 * P, P) == 11


def test_a_generation_may_be_drained_only_after_its_period_and_the_grace() -> None:
    assert not may_be_drained(10, 11 * P, P, grace_ms=5_000)
    assert not may_be_drained(10, 11 * P + 4_999, P, grace_ms=5_000)
    assert may_be_drained(10, 11 * P + 5_000, P, grace_ms=5_000)


def test_the_next_generation_is_fetched_from_just_before_it_begins_and_a_begun_one_at_once() -> None:
    assert fetch_from_s(11, 11 * P - 20_000, P) == (11 * P - FETCH_EARLY_MS) / 1000
    assert fetch_from_s(11, 11 * P - FETCH_EARLY_MS, P) is None
    assert fetch_from_s(10, 10 * P + 5_000, P) is None
    assert fetch_from_s(8, 10 * P, P) is None


def test_generations_on_the_broker_are_found_by_name() -> None:
    names = ["bookings.g3", "bookings.g4", "payments.g4", "bookings", "other.g1", "bookings.gzz"]
    assert generations_on_broker("bookings", names) == {3, 4}


@dataclass
class FakeReader:
    topic: str
    group: str
    at_end: bool = False
    stopped: bool = False
    fetch_from_s: float | None = None

    async def run(self, stop: asyncio.Event, fetch_from_s: float | None = None) -> None:
        self.fetch_from_s = fetch_from_s
        await stop.wait()

    async def stop(self) -> None:
        self.stopped = True

    def caught_up(self) -> bool:
        return self.at_end


@dataclass
class Broker:
    topics: set[str] = field(default_factory=set)
    deleted: list[str] = field(default_factory=list)

    async def list_topics(self) -> Collection[str]:
        return set(self.topics)

    async def delete(self, names: Collection[str]) -> None:
        self.deleted.extend(sorted(names))
        self.topics -= set(names)


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


async def test_a_consumer_reads_each_generation_until_drained_then_records_it() -> None:
    clock = Clock(10 * P + 1_000)
    registry = InMemoryGenerationRegistry()
    broker = Broker({"bookings.g8"})  # left by a crash: not drained by this consumer
    readers: dict[str, FakeReader] = {}

    def make(topic: str, group: str) -> FakeReader:
        readers[topic] = FakeReader(topic, group)
        return readers[topic]

    consumer = GenerationalConsumer(
        "bookings", "pay", "pay", make, registry, broker.list_topics, P, lead_ms=20_000, grace_ms=5_000, clock=clock,
        check_s=0.01, heartbeat_s=0.0,
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await asyncio.sleep(0.05)
    assert set(consumer.running) == {8, 10}
    assert readers["bookings.g10"].group == "pay.g10"
    readers["bookings.g8"].at_end = True
    await asyncio.sleep(0.05)
    assert 8 not in consumer.running, "an old generation read to its end is let go"
    assert readers["bookings.g8"].stopped
    assert await registry.drained("pay", "bookings") == {8}

    assert readers["bookings.g10"].fetch_from_s is None, "a generation that has begun is fetched at once"
    assert readers["bookings.g8"].fetch_from_s is None

    clock.ms = 11 * P - 10_000  # within the lead of generation 11
    await asyncio.sleep(0.05)
    assert set(consumer.running) == {10, 11}
    assert readers["bookings.g11"].fetch_from_s == (11 * P - FETCH_EARLY_MS) / 1000, "joined now, fetched then"
    clock.ms = 11 * P + 1_000  # generation 10 is over, but not its grace
    readers["bookings.g10"].at_end = True
    await asyncio.sleep(0.05)
    assert 10 in consumer.running
    clock.ms = 11 * P + 6_000
    await asyncio.sleep(0.05)
    assert set(consumer.running) == {11}
    assert consumer.drained_here == [8, 10]
    stop.set()
    await asyncio.wait_for(task, 2)
    assert readers["bookings.g11"].stopped


async def test_a_generation_not_yet_read_to_its_end_is_kept() -> None:
    clock = Clock(20 * P)
    readers: list[FakeReader] = []

    def make(topic: str, group: str) -> FakeReader:
        readers.append(FakeReader(topic, group))
        return readers[-1]

    broker = Broker({"bookings.g5"})
    consumer = GenerationalConsumer(
        "bookings", "pay", "pay", make, InMemoryGenerationRegistry(), broker.list_topics, P, clock=clock, check_s=0.01
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await asyncio.sleep(0.1)
    assert 5 in consumer.running
    stop.set()
    await asyncio.wait_for(task, 2)


async def test_only_generations_every_live_consumer_drained_are_deleted() -> None:
    registry = InMemoryGenerationRegistry()
    now = 10 * P
    broker = Broker({"bookings.g7", "bookings.g8", "bookings.g9", "bookings.g10", "payments.g8"})
    for name in ("pay", "notify"):
        await registry.heartbeat(name, "bookings", now)
    await registry.heartbeat("results", "payments", now)
    await registry.mark_drained("pay", "bookings", 7)
    await registry.mark_drained("notify", "bookings", 7)
    await registry.mark_drained("pay", "bookings", 8)
    await registry.mark_drained("results", "payments", 8)
    deleted = await retire_generations(
        ["bookings", "payments"], registry, broker.list_topics, broker.delete, now, P, alive_window_ms=600_000
    )
    assert deleted == {"bookings": [7], "payments": [8]}
    assert broker.topics == {"bookings.g8", "bookings.g9", "bookings.g10"}
    assert await registry.drained("pay", "bookings") == {8}
