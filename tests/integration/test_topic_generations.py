"""Topic generations on a real broker: messages published over several generations are all acted
on once, each generation is read by a consumer group of its own until drained, and the drained
generations are deleted from the broker (engine/adapters/kafka_generations.py)."""

from __future__ import annotations

import asyncio
import time
from functools import partial

import pytest

from engine.adapters.kafka_bus import KafkaPublisher
from engine.adapters.kafka_consumer import MessageConsumer
from engine.adapters.kafka_generations import GenerationalConsumer, generations_on_broker, retire_generations
from engine.adapters.kafka_topics import delete_topics, list_topic_names
from engine.adapters.memory_generations import InMemoryGenerationRegistry
from engine.domain import codec
from engine.following import Backoff
from engine.outbox import OutgoingMessage
from tests.integration.test_kafka_consumer import Recorder, outbox, uid, until

pytestmark = pytest.mark.slow

PERIOD_MS = 3_000


async def test_messages_over_several_generations_are_all_handled_and_drained_generations_deleted(
    kafka_bootstrap: str,
) -> None:
    prefix = f"gen-{uid()}-"
    topic = prefix + "bookings"
    registry = InMemoryGenerationRegistry()
    recorder = Recorder()

    def reader(topic_name: str, group_id: str) -> MessageConsumer:
        return MessageConsumer(
            kafka_bootstrap,
            topic_name,
            group_id,
            "test-consumer",
            recorder.handle,
            recorder.processed,
            session_timeout_ms=2000,
            heartbeat_interval_ms=300,
            partitions=4,
            poll_timeout_ms=200,
            reconnect_backoff=Backoff(0.2, 1.0),
        )

    listing = partial(list_topic_names, kafka_bootstrap)
    consumer = GenerationalConsumer(
        topic, prefix + "group", "test-consumer", reader, registry, listing, PERIOD_MS,
        lead_ms=2_000, grace_ms=500, check_s=0.2, heartbeat_s=1.0,
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    stream = f"event/{uid()}"
    sent: list[str] = []
    seen_generations: set[int] = set()
    try:
        async with KafkaPublisher(kafka_bootstrap, topic_prefix=prefix, generation_ms=PERIOD_MS, lead_ms=2_000) as pub:
            for version in range(1, 41):
                message = outbox(stream, version)
                key = f"{stream}-{version % 3}".encode()
                await pub.publish_many([OutgoingMessage("bookings", key, codec.encode(message), (("type", b"X"),))])
                seen_generations.add(pub.generation() or 0)
                sent.append(message.message_id)
                await asyncio.sleep(0.2)
        assert len(seen_generations) >= 3, "the test must span generations"
        await until(lambda: set(sent) <= recorder.done, 30, "every message handled")
        # Let every generation but the newest ones drain, then retire them.
        retired: dict[str, list[int]] = {}
        async with asyncio.timeout(30):
            while True:
                done = await retire_generations(
                    [topic], registry, listing, partial(delete_topics, kafka_bootstrap),
                    int(time.time() * 1000), PERIOD_MS, 600_000,
                )  # fmt: skip
                for name, generations in done.items():
                    retired.setdefault(name, []).extend(generations)
                if set(retired.get(topic, [])) >= set(sorted(seen_generations)[:-1]):
                    break
                await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    handled = [i for call in recorder.calls for i in call]
    assert sorted(handled) == sorted(sent), "every message acted on, once"
    left = generations_on_broker(topic, await list_topic_names(kafka_bootstrap))
    assert not left & set(retired[topic]), "retired generations are gone from the broker"
    assert set(consumer.drained_here) >= set(retired[topic])
