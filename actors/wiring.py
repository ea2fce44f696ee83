"""The composition roots of rezerv's Ray processes: what a shard and each saga service are built from.

Every adapter a Ray process uses is chosen and built here, and only here: `build_host` for a
shard (its pools, Redis fencing, the event store and the entity host over them), `ServiceWiring`
for each saga service role (actors/services.py lists them). The actor classes keep what Ray
needs of a process (start, stop, ping, stats, metrics); the engine's services receive their
ports already built (engine/ports.py) and never import an adapter (an import contract in
pyproject.toml). The adapters are imported inside the functions: a process imports only what
its role uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from engine.config import Settings
from engine.hosting import EntityHost, HostConfig
from engine.ports import ExecuteCommands

if TYPE_CHECKING:
    from engine.adapters.pg_log import AppendListener

log = logging.getLogger("rezerv.services")


def host_config(settings: Settings, owner: str) -> HostConfig:
    return HostConfig(
        owner=owner,
        commit_max=settings.commit_max,
        commits_in_flight=settings.commits_in_flight,
        snapshot_every=settings.snapshot_every,
        snapshot_min_interval_ms=int(settings.snapshot_min_interval_s * 1000),
        passivate_after_ms=int(settings.passivate_after_s * 1000),
        idempotency_ttl_ms=int(settings.idempotency_ttl_s * 1000),
        lease_ms=int(settings.lease_ttl_s * 1000),
        archive_after_ms=int(settings.archive_after_s * 1000),
        busiest=settings.metrics_top_entities,
    )


async def build_host(settings: Settings, owner: str) -> tuple[EntityHost, list[Any]]:
    """A shard's entity host over PostgreSQL and Redis, and the connections to close at shutdown
    (each has `aclose` or `close`). Built inside the actor's event loop, on its first call."""
    from engine.adapters.pg_event_store import PostgresEventStore
    from engine.adapters.pg_pool import create_entity_pool, create_writer_pool
    from engine.adapters.redis_client import create_redis
    from engine.adapters.redis_fencing import RedisFencing

    s = settings
    pool = await create_entity_pool(s.database_url, s.db_pool_size, s.db_command_timeout_s)
    writers = await create_writer_pool(s.database_url, s.commits_in_flight, s.db_command_timeout_s)
    redis = create_redis(s.redis_url)
    store = PostgresEventStore(pool, writers)
    host = EntityHost(
        store,
        RedisFencing(redis),
        host_config(s, owner),
        archive=store,
        counting=s.metrics,
    )
    return host, [pool, writers, redis]


class ServiceWiring:
    """Builds one saga service role's loops and hands each to `spawn`; the connections it opens
    go to `closers` (closed by the actor's `stop`), and the parts an operator or a test asks
    about (the relay, the consumers, the supervisor, the engine client) to `parts`."""

    def __init__(
        self,
        settings: Settings,
        stop_event: asyncio.Event,
        spawn: Callable[[str, Awaitable[None]], None],
        closers: list[Callable[[], Awaitable[Any]]],
        parts: dict[str, Any],
    ) -> None:
        self.settings = settings
        self.stop_event = stop_event
        self._spawn = spawn
        self.closers = closers
        self.parts = parts

    async def start(self, role: str) -> None:
        await getattr(self, f"_start_{role}")()

    async def _pool(self, size: int = 3) -> Any:
        from engine.adapters.pg_pool import create_pool

        pool = await create_pool(self.settings.database_url, size, self.settings.db_command_timeout_s)
        self.closers.append(pool.close)
        return pool

    def _execute(self) -> ExecuteCommands:
        from actors.client import ray_client

        client = self.parts["client"] = ray_client(self.settings)
        self.closers.append(client.close)
        return client.execute_many

    async def _start_outbox(self) -> None:
        from engine.adapters.kafka_bus import KafkaPublisher
        from engine.adapters.pg_bookings import BookingsProjection
        from engine.adapters.pg_log import AppendListener, PostgresLogReader
        from engine.adapters.pg_sagas import PostgresPendingSagas
        from engine.relay import OutboxRelay
        from engine.saga_supervisor import SagaSupervisor

        # Three connections: the followers' one LISTEN connection (pg_log.AppendListener: every
        # log follower in this process wakes on it), two for the relay, the bookings projection,
        # the supervisor and the topic retirer.
        pool = await self._pool(3)
        listener = self.parts["append_listener"] = AppendListener(pool)
        self.closers.append(listener.close)
        publisher = KafkaPublisher(
            self.settings.kafka_bootstrap,
            topic_prefix=self.settings.kafka_topic_prefix,
            generation_ms=self._generation_ms(),
            lead_ms=self._lead_ms(),
        )
        self.closers.append(publisher.close)
        relay = OutboxRelay(PostgresLogReader(pool, listener), publisher, min_interval_s=self._saga_pace_s())
        projection = BookingsProjection(
            pool,
            PostgresLogReader(pool, listener),
            min_interval_s=self.settings.projection_interval_s,
            sales=self.settings.sales,  # the sales counters beside the rows (engine/sales.py)
        )
        supervisor = SagaSupervisor(
            PostgresPendingSagas(pool),
            publisher,
            self._execute(),
            int(self.settings.saga_retry_after_s * 1000),
            inbox_retention_s=self.settings.inbox_retention_s,
            resend_max_ms=int(self.settings.saga_resend_max_s * 1000),
        )
        self.parts.update(relay=relay, projection=projection, supervisor=supervisor)
        self._spawn("outbox-relay", relay.run(self.stop_event))
        self._spawn("bookings-projection", projection.run(self.stop_event))
        await self._start_catalog(listener)
        self._spawn("saga-supervisor", supervisor.run(self.stop_event, self.settings.expiry_sweep_s))
        if self._generation_ms():
            self._spawn("topic-retirer", self._retire_generations(pool))
        if self.settings.ledger:
            await self._start_ledger(listener)
        if self.settings.notifier:
            await self._start_notifier(listener)

    def _saga_pace_s(self) -> float:
        """While keeping up, at least this long between the relay's batches and the saga's
        consumers' (REZERV_SAGA_BATCH_INTERVAL_MS)."""
        return self.settings.saga_batch_interval_ms / 1000

    def _generation_ms(self) -> int:
        return int(self.settings.kafka_generation_s * 1000)

    def _lead_ms(self) -> int:
        """A new generation's topics and groups are made this long before it begins: two
        session timeouts, about four group joins on tansu."""
        return 2 * self.settings.kafka_session_timeout_ms

    async def _retire_generations(self, pool: Any, period_s: float = 10.0) -> None:
        """Delete the topic generations every live consumer has drained (kafka_generations.py)."""
        from functools import partial

        from engine.adapters.kafka_generations import retire_generations
        from engine.adapters.kafka_topics import TOPICS, delete_topics, list_topic_names
        from engine.adapters.pg_generations import PostgresGenerationRegistry
        from engine.following import wait_until

        s = self.settings
        registry = PostgresGenerationRegistry(pool)
        topics = [s.kafka_topic_prefix + name for name in TOPICS]
        while not self.stop_event.is_set():
            try:
                await retire_generations(
                    topics,
                    registry,
                    partial(list_topic_names, s.kafka_bootstrap),
                    partial(delete_topics, s.kafka_bootstrap),
                    int(time.time() * 1000),
                    self._generation_ms(),
                    int(s.kafka_consumer_absent_s * 1000),
                )
            except Exception as exc:
                log.warning("retiring topic generations failed (%r); trying again in %.0f s", exc, period_s)
            await wait_until(self.stop_event, None, period_s)

    async def _start_ledger(self, listener: AppendListener) -> None:
        """The ledger projection (wallet statements), in this process too: an actor process costs
        ~50 MB and idle CPU. Its own small pool, so its batches never wait behind the relay's."""
        from engine.adapters.pg_ledger import LedgerProjection
        from engine.adapters.pg_log import PostgresLogReader

        pool = await self._pool(1)  # it listens on the outbox's connection
        ledger = LedgerProjection(
            pool, PostgresLogReader(pool, listener), min_interval_s=self.settings.projection_interval_s
        )
        self.parts["ledger"] = ledger
        self._spawn("ledger-projection", ledger.run(self.stop_event))

    async def _start_catalog(self, listener: AppendListener) -> None:
        """The catalog projection, in this process too (an actor process costs ~50 MB and idle
        CPU); its own small pool, so that its batches never wait behind the relay's."""
        from engine.adapters.pg_catalog import CatalogProjection
        from engine.adapters.pg_log import PostgresLogReader
        from engine.adapters.redis_client import create_redis
        from engine.adapters.redis_page_cache import RedisPageCache, catalog_prefix

        invalidate = None
        if self.settings.redis_url:
            redis = create_redis(self.settings.redis_url, max_connections=4)
            self.closers.append(redis.aclose)
            invalidate = RedisPageCache(redis, catalog_prefix(self.settings.namespace)).invalidate
        pool = await self._pool(2)  # it listens on the outbox's connection
        catalog = CatalogProjection(
            pool,
            PostgresLogReader(pool, listener),
            invalidate=invalidate,
            min_interval_s=self.settings.catalog_interval_s,
        )
        self.parts["catalog"] = catalog
        self._spawn("catalog-projection", catalog.run(self.stop_event))

    async def _start_payments(self) -> None:
        from engine.saga import PAYMENT_WORKER, PaymentPolicy, PaymentWorker

        policy = PaymentPolicy(self.settings.payment_max_tickets, self.settings.payment_min_amount)
        worker = PaymentWorker(self._execute(), policy)
        await self._consume("bookings", PAYMENT_WORKER, worker.handle, worker.event_types)

    def _log_consumer(
        self,
        name: str,
        pool: Any,
        listener: AppendListener,
        handler: Callable[[Any], Awaitable[None]],
        event_types: frozenset[str],
        min_interval_s: float,
    ) -> None:
        """A read model fed the saga's messages from the log (engine/log_consumer.py), in this
        process: it wakes on the outbox's listening connection."""
        from engine.adapters.pg_log import PostgresLogReader
        from engine.log_consumer import LogConsumer

        consumer = LogConsumer(
            name, PostgresLogReader(pool, listener), handler, event_types, min_interval_s=min_interval_s
        )
        self.parts[name] = consumer
        self._spawn(f"log-consumer-{name}", consumer.run(self.stop_event))

    async def _start_notifier(self, listener: AppendListener) -> None:
        """The booking outcomes told to their customers (engine/notifier.py): the outcomes read
        from the log, stored as notifications, and the webhook deliveries."""
        from engine.adapters.http_post import aiohttp_post
        from engine.adapters.pg_notifications import PostgresNotifications
        from engine.notifications import NOTIFIER, OUTCOMES
        from engine.notifier import Notifier, WebhookDeliverer

        pool = await self._pool(3)
        store = PostgresNotifications(pool)
        post, close = aiohttp_post()
        self.closers.append(close)
        deliverer = WebhookDeliverer(store, post, self.settings.webhook_max_attempts, self.settings.webhook_timeout_s)
        notifier = Notifier(store, deliverer.wake, max_age_s=self.settings.notify_max_age_s)
        self.parts.update(notifier=notifier, webhooks=deliverer)
        self._log_consumer(NOTIFIER, pool, listener, notifier.handle, OUTCOMES, self._saga_pace_s())
        self._spawn("webhook-deliveries", deliverer.run(self.stop_event))

    async def _consume(
        self, topic: str, name: str, handler: Callable[[Any], Awaitable[None]], event_types: frozenset[str]
    ) -> None:
        """A consumer group on `topic` (one per live topic generation), deduplicating by the
        saga's inbox, paced by REZERV_SAGA_BATCH_INTERVAL_MS while it keeps up; `self.parts`
        calls it "consumer"."""
        from functools import partial

        from engine.adapters.kafka_consumer import MessageConsumer
        from engine.adapters.kafka_generations import GenerationalConsumer
        from engine.adapters.kafka_topics import TOPICS, list_topic_names
        from engine.adapters.pg_event_store import PostgresEventStore
        from engine.adapters.pg_generations import PostgresGenerationRegistry

        pool = await self._pool(2)
        store = PostgresEventStore(pool)

        async def processed(message_ids: list[str]) -> set[str]:
            return await store.processed(name, message_ids)

        prefix = self.settings.kafka_topic_prefix
        session = self.settings.kafka_session_timeout_ms
        min_interval_s = self._saga_pace_s()

        def reader(topic_name: str, group_id: str) -> MessageConsumer:
            return MessageConsumer(
                self.settings.kafka_bootstrap,
                topic_name,
                group_id,
                name,
                handler,
                processed,
                session_timeout_ms=session,
                heartbeat_interval_ms=max(100, session // 6),
                min_interval_s=min_interval_s,
                event_types=event_types,
                partitions=TOPICS[topic],
            )

        if not self._generation_ms():
            consumer = reader(prefix + topic, prefix + name)
            self.parts["consumer"] = consumer
            self._spawn(f"consumer-{name}", consumer.run(self.stop_event))
            return
        generations = GenerationalConsumer(
            prefix + topic,
            prefix + name,
            name,
            reader,
            PostgresGenerationRegistry(pool),
            partial(list_topic_names, self.settings.kafka_bootstrap),
            self._generation_ms(),
            lead_ms=self._lead_ms(),
        )
        self.parts["consumer"] = generations
        self._spawn(f"consumer-{name}", generations.run(self.stop_event))
