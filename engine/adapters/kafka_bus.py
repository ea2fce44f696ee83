"""Publishing to Kafka (aiokafka) for the outbox relay: a batch is done when the broker acked all of it.

At least once, not exactly once: no idempotent or transactional producer (the tansu broker used
in development rejects both: aiokafka 0.14 speaks only the oldest InitProducerId version, which
tansu refuses), so a batch that fails part-way is sent again whole and consumers remove
duplicates by message id. `acks="all"` so an acknowledged
message is on every in-sync replica before the relay moves its checkpoint past it.

The broker may lose its topics (tansu keeps them in memory; a restart empties it), and a broker
that auto-creates topics would create them with its default partition count. So topics are
ensured (engine/adapters/kafka_topics.py) before the first send and again after every failure,
before anything is sent to them.

With `generation_ms` set, every message goes to its topic's generation of the moment it is
published (engine/outbox.py "topic generations"); the next generation's topics are created a
little ahead (`lead_ms`), so that consumers have joined them before the first message arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from engine.adapters.kafka_topics import TOPICS, ensure_topics
from engine.outbox import OutgoingMessage, PublishFailed, by_partition, generation_at, generation_topic

BROKER_ERRORS = (KafkaError, OSError, TimeoutError)  # OSError covers ConnectionError


class KafkaPublisher:
    """The relay's producer; starts lazily, so it can be created while the broker is down."""

    def __init__(
        self,
        bootstrap: str,
        *,
        topics: Mapping[str, int] | None = None,
        topic_prefix: str = "",
        request_timeout_ms: int = 10_000,
        client_id: str = "rezerv-outbox-relay",
        generation_ms: int = 0,
        lead_ms: int = 20_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`topic_prefix` is put in front of every topic name, so that several rezerv deployments
        (or test runs) can share one broker without reading each other's messages. `generation_ms`
        0: no generations (plain topic names)."""
        self.bootstrap = bootstrap
        self.prefix = topic_prefix
        self.base_topics = dict(TOPICS if topics is None else topics)
        self.generation_ms = generation_ms
        self.lead_ms = lead_ms
        self.clock = clock
        self._ensured: set[int | None] = set()  # generations whose topics exist (None: no generations)
        self.request_timeout_ms = request_timeout_ms
        self.client_id = client_id
        # A hung send must not hold the relay forever: past this, the batch counts as failed.
        self.publish_timeout_s = 3 * request_timeout_ms / 1000
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> KafkaPublisher:
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.close()

    def generation(self) -> int | None:
        """The generation a message published now goes to (None without generations)."""
        if not self.generation_ms:
            return None
        return generation_at(int(self.clock() * 1000), self.generation_ms)

    def topics_of(self, generation: int | None) -> dict[str, int]:
        """The (prefixed) topic names of `generation`, with their partition counts."""
        return {generation_topic(self.prefix + name, generation): n for name, n in self.base_topics.items()}

    async def _ensure(self, generation: int | None, force: bool = False) -> None:
        """Create `generation`'s topics if this publisher has not seen them yet, and the next
        generation's once it is less than `lead_ms` away."""
        wanted = [generation]
        if generation is not None and self.generation_ms:
            next_start = (generation + 1) * self.generation_ms
            if next_start - self.clock() * 1000 < self.lead_ms:
                wanted.append(generation + 1)
        for g in wanted:
            if force or g not in self._ensured:
                await ensure_topics(self.bootstrap, self.topics_of(g))
                self._ensured.add(g)
        self._ensured = {g for g in self._ensured if g is None or generation is None or g >= generation}

    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        if not messages:
            return
        generation = self.generation()
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                producer = await self._ready()
                await self._ensure(generation)
                try:
                    await self._send_all(producer, messages, generation)
                except UnknownTopicOrPartitionError:
                    # The broker lost (or never had) a topic: create it and send the batch again.
                    await self._ensure(generation, force=True)
                    await self._send_all(producer, messages, generation)
        except BROKER_ERRORS as exc:
            self._ensured.clear()
            raise PublishFailed(f"publishing {len(messages)} messages to {self.bootstrap}: {exc!r}") from exc

    async def _ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id=self.client_id,
                acks="all",
                linger_ms=5,
                max_batch_size=256 * 1024,  # record batches built by _send_all: fewer, larger ones
                enable_idempotence=False,
                request_timeout_ms=self.request_timeout_ms,
                retry_backoff_ms=100,
            )
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _send_all(
        self, producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage], generation: int | None
    ) -> None:
        """Send every message, then wait for every acknowledgement (not just the first failure).

        Messages go in record batches built here, one series per (topic, partition) in the given
        order (engine/outbox.py `by_partition`): one future per batch instead of one per message,
        and no partitioner run per message, which was most of the relay's CPU."""
        names = {m.topic: generation_topic(self.prefix + m.topic, generation) for m in messages}
        partitions = {topic: len(await producer.partitions_for(name) or ()) for topic, name in names.items()}
        if not all(partitions.values()):
            raise UnknownTopicOrPartitionError(f"no partitions known for {sorted(names.values())}")
        futures: list[asyncio.Future[object]] = []
        try:
            for (topic, partition), group in by_partition(messages, partitions).items():
                batch = producer.create_batch()
                for m in group:
                    if batch.append(timestamp=None, key=m.key, value=m.value, headers=list(m.headers)) is None:
                        futures.append(await producer.send_batch(batch, names[topic], partition=partition))
                        batch = producer.create_batch()
                        if batch.append(timestamp=None, key=m.key, value=m.value, headers=list(m.headers)) is None:
                            raise PublishFailed(f"a message of {len(m.value)} bytes does not fit in a batch")
                futures.append(await producer.send_batch(batch, names[topic], partition=partition))
        except BaseException:
            for future in futures:  # their outcome no longer matters; do not log it as unretrieved
                future.add_done_callback(_consume_outcome)
            raise
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            raise next((e for e in errors if isinstance(e, UnknownTopicOrPartitionError)), errors[0])

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await producer.stop()


def _consume_outcome(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()
