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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from types import TracebackType

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from engine.adapters.kafka_topics import TOPICS, ensure_topics
from engine.outbox import OutgoingMessage, PublishFailed, by_partition

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
    ) -> None:
        """`topic_prefix` is put in front of every topic name, so that several rezerv deployments
        (or test runs) can share one broker without reading each other's messages."""
        self.bootstrap = bootstrap
        self.prefix = topic_prefix
        self.topics = {topic_prefix + name: parts for name, parts in (TOPICS if topics is None else topics).items()}
        self.request_timeout_ms = request_timeout_ms
        self.client_id = client_id
        # A hung send must not hold the relay forever: past this, the batch counts as failed.
        self.publish_timeout_s = 3 * request_timeout_ms / 1000
        self._producer: AIOKafkaProducer | None = None
        self._topics_ensured = False

    async def __aenter__(self) -> KafkaPublisher:
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.close()

    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        if not messages:
            return
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                producer = await self._ready()
                try:
                    await self._send_all(producer, messages)
                except UnknownTopicOrPartitionError:
                    # The broker lost (or never had) a topic: create it and send the batch again.
                    await ensure_topics(self.bootstrap, self.topics)
                    await self._send_all(producer, messages)
        except BROKER_ERRORS as exc:
            self._topics_ensured = False
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
        if not self._topics_ensured:
            await ensure_topics(self.bootstrap, self.topics)
            self._topics_ensured = True
        return self._producer

    async def _send_all(self, producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage]) -> None:
        """Send every message, then wait for every acknowledgement (not just the first failure).

        Messages go in record batches built here, one series per (topic, partition) in the given
        order (engine/outbox.py `by_partition`): one future per batch instead of one per message,
        and no partitioner run per message, which was most of the relay's CPU."""
        prefix = self.prefix
        topics = {m.topic for m in messages}
        partitions = {topic: len(await producer.partitions_for(prefix + topic) or ()) for topic in topics}
        if not all(partitions.values()):
            raise UnknownTopicOrPartitionError(f"no partitions known for {sorted(topics)}")
        futures: list[asyncio.Future[object]] = []
        try:
            for (topic, partition), group in by_partition(messages, partitions).items():
                batch = producer.create_batch()
                for m in group:
                    if batch.append(timestamp=None, key=m.key, value=m.value, headers=list(m.headers)) is None:
                        futures.append(await producer.send_batch(batch, prefix + topic, partition=partition))
                        batch = producer.create_batch()
                        if batch.append(timestamp=None, key=m.key, value=m.value, headers=list(m.headers)) is None:
                            raise PublishFailed(f"a message of {len(m.value)} bytes does not fit in a batch")
                futures.append(await producer.send_batch(batch, prefix + topic, partition=partition))
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
