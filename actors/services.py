"""The saga's long-running services, each a Ray actor (made remote in actors/factory.py).

- "outbox": the outbox relay (event log -> Kafka), the bookings, catalog and ledger projections
  (event log -> read models: bookings, browsing, wallet statements) and the saga supervisor
  (re-sends what the broker lost, expires orphaned holds);
- "payments": the payment actor, a consumer group on the bookings topic; and the sales consumer
  (engine/sales.py), another group on the same topic, writing the sales read model a batch per
  REZERV_SALES_INTERVAL_S (it shares this process rather than taking a Ray worker process of its own);
- "results": a consumer group on the payments topic, completing or compensating bookings; and
  the notifier (engine/notifier.py: booking outcomes from both topics to stored notifications,
  and the webhook deliveries), in this process because an actor process costs ~50 MB and idle
  CPU, and the notifier's work per booking is a fraction of a batch statement.

Ray restarts a crashed service; consumers resume from their committed offsets, log readers from
their checkpoints in PostgreSQL, and every step is idempotent, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from actors import gc_tuning, process_metrics
from engine import tracing
from engine.cancellation import reraise_if_cancelled
from engine.config import Settings
from engine.domain.commands import Command

log = logging.getLogger("rezerv.services")

ROLES = ("outbox", "payments", "results")


class ServiceActor:
    def __init__(self, role: str, env: dict[str, str]) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown service role {role!r}; one of {ROLES}")
        self.role = role
        self.settings = Settings.from_env(env)
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.closers: list[Callable[[], Awaitable[Any]]] = []
        self.parts: dict[str, Any] = {}
        self._start_lock: asyncio.Lock | None = None
        logging.basicConfig(level=self.settings.log_level)
        gc_tuning.tune()
        self.metrics_address = process_metrics.start(self.settings)
        process_metrics.register_source("service", self._metric_families)
        tracing.configure_from(self.settings, f"rezerv-{role}")
        # Ray re-runs only the constructor when it restarts a crashed actor, so a service starts
        # its own loops: the actor's event loop is already running (in another thread) here.
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(lambda: loop.create_task(self._start_logged()))

    async def _start_logged(self) -> None:
        try:
            await self.start()
        except Exception:
            log.exception("service %s could not start; `start` can be called again", self.role)

    async def start(self) -> dict[str, Any]:
        """Start the role's loops (idempotent: a second call only reports)."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self.tasks:
                await getattr(self, f"_start_{self.role}")()
        return await self.ping()

    async def ping(self) -> dict[str, Any]:
        return {"role": self.role, "pid": os.getpid(), "running": [t.get_name() for t in self.tasks if not t.done()]}

    async def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role}
        supervisor = self.parts.get("supervisor")
        if supervisor is not None:
            out["sweeps"] = supervisor.totals.__dict__
        client = self.parts.get("client")
        if client is not None:
            out["client"] = client.stats()
        return out

    async def metrics_target(self) -> dict[str, Any] | None:
        """Where Prometheus scrapes this process (actors/process_metrics.py); None with metrics off."""
        if self.metrics_address is None:
            return None
        return {"address": self.metrics_address, "labels": {"process": f"service-{self.role}", "role": self.role}}

    def _metric_families(self) -> Any:
        """What this service counts as plain integers, as metric families (read when scraped)."""
        client = self.parts.get("client")
        if client is not None:
            yield from process_metrics.client_families(client)
        supervisor = self.parts.get("supervisor")
        if supervisor is not None:
            yield process_metrics.labelled_counter(
                "rezerv_saga_resent",
                "Saga steps the supervisor re-sent (holds, decisions, endings), holds it expired, inbox rows purged",
                ["what"],
                dict(supervisor.totals.__dict__),
            )

    async def stacks(self) -> dict[str, str]:
        """Where each of this actor's asyncio tasks is waiting right now (for a stuck saga)."""
        out: dict[str, str] = {}
        for task in asyncio.all_tasks():
            frames = task.get_stack(limit=12)
            where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames))
            out[f"{task.get_name()}#{id(task):x}"] = where or "(not started)"
        return out

    async def sweep(self) -> dict[str, int]:
        """Run one supervisor sweep now (tests and operators; the loop runs on its own too)."""
        return dict((await self.parts["supervisor"].sweep()).__dict__)

    async def stop(self) -> None:
        """Stop the role's loops and close its connections; `start` brings them back."""
        self.stop_event.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                await close()
        self.tasks.clear()
        self.closers.clear()
        self.parts.clear()
        self.stop_event = asyncio.Event()

    # ---- roles --------------------------------------------------------------------------------
    def _spawn(self, name: str, work: Awaitable[None]) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(_logged(name, work), name=name))

    async def _pool(self, size: int = 3) -> Any:
        from engine.adapters.pg_pool import create_pool

        pool = await create_pool(self.settings.database_url, size, self.settings.db_command_timeout_s)
        self.closers.append(pool.close)
        return pool

    def _execute(self) -> Callable[[Sequence[Command]], Awaitable[list[Any]]]:
        from actors.client import ray_client

        client = self.parts["client"] = ray_client(self.settings)
        return client.execute_many

    async def _start_outbox(self) -> None:
        from engine.adapters.kafka_bus import KafkaPublisher
        from engine.adapters.pg_bookings import BookingsProjection
        from engine.adapters.pg_log import PostgresLogReader
        from engine.adapters.pg_sagas import PostgresPendingSagas
        from engine.relay import OutboxRelay
        from engine.saga_supervisor import SagaSupervisor

        pool = await self._pool(4)
        publisher = KafkaPublisher(
            self.settings.kafka_bootstrap,
            topic_prefix=self.settings.kafka_topic_prefix,
            generation_ms=self._generation_ms(),
            lead_ms=self._lead_ms(),
        )
        self.closers.append(publisher.close)
        relay = OutboxRelay(
            PostgresLogReader(pool), publisher, min_interval_s=self.settings.saga_batch_interval_ms / 1000
        )
        projection = BookingsProjection(
            pool, PostgresLogReader(pool), min_interval_s=self.settings.projection_interval_s
        )
        supervisor = SagaSupervisor(
            PostgresPendingSagas(pool),
            publisher,
            self._execute(),
            int(self.settings.saga_retry_after_s * 1000),
            inbox_retention_s=self.settings.inbox_retention_s,
        )
        self.parts.update(relay=relay, projection=projection, supervisor=supervisor)
        self._spawn("outbox-relay", relay.run(self.stop_event))
        self._spawn("bookings-projection", projection.run(self.stop_event))
        await self._start_catalog()
        self._spawn("saga-supervisor", supervisor.run(self.stop_event, self.settings.expiry_sweep_s))
        if self._generation_ms():
            self._spawn("topic-retirer", self._retire_generations(pool))
        if self.settings.ledger:
            await self._start_ledger()

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

    async def _start_ledger(self) -> None:
        """The ledger projection (wallet statements), in this process too: an actor process costs
        ~50 MB and idle CPU. Its own small pool, so its batches never wait behind the relay's."""
        from engine.adapters.pg_ledger import LedgerProjection

        ledger = LedgerProjection(await self._pool(2), min_interval_s=self.settings.projection_interval_s)
        self.parts["ledger"] = ledger
        self._spawn("ledger-projection", ledger.run(self.stop_event))

    async def _start_catalog(self) -> None:
        """The catalog projection, in this process too (an actor process costs ~50 MB and idle
        CPU); its own small pool, so that its batches never wait behind the relay's."""
        from engine.adapters.pg_catalog import CatalogProjection
        from engine.adapters.redis_client import create_redis
        from engine.adapters.redis_page_cache import RedisPageCache, catalog_prefix

        invalidate = None
        if self.settings.redis_url:
            redis = create_redis(self.settings.redis_url, max_connections=4)
            self.closers.append(redis.aclose)
            invalidate = RedisPageCache(redis, catalog_prefix(self.settings.namespace)).invalidate
        catalog = CatalogProjection(
            await self._pool(3), invalidate=invalidate, min_interval_s=self.settings.catalog_interval_s
        )
        self.parts["catalog"] = catalog
        self._spawn("catalog-projection", catalog.run(self.stop_event))

    async def _start_payments(self) -> None:
        from engine.saga import PAYMENT_WORKER, PaymentPolicy, PaymentWorker

        policy = PaymentPolicy(self.settings.payment_max_tickets, self.settings.payment_min_amount)
        worker = PaymentWorker(self._execute(), policy)
        await self._consume("bookings", PAYMENT_WORKER, worker.handle, worker.event_types)
        if self.settings.sales:
            await self._start_sales()

    async def _start_sales(self) -> None:
        """The sales consumer: its own group on the bookings topic, a batch at most every
        REZERV_SALES_INTERVAL_S written in one statement, no inbox (engine/sales.py)."""
        from engine.adapters.pg_sales import PostgresSales
        from engine.sales import SALES_CONSUMER, SALES_EVENT_TYPES, fold

        sales = PostgresSales(await self._pool(1))

        async def handle(messages: list[Any]) -> None:
            await sales.apply(fold(messages))

        async def nothing_processed(_ids: list[str]) -> set[str]:
            return set()  # exactly once by the read model's own state, not by an inbox

        await self._consume(
            "bookings",
            SALES_CONSUMER,
            handle,
            SALES_EVENT_TYPES,
            processed=nothing_processed,
            part="sales",
            batch_max=20_000,
            min_interval_s=self.settings.sales_interval_s,
        )

    async def _start_results(self) -> None:
        from engine.saga import RESULTS_WORKER, BookingResultsWorker

        worker = BookingResultsWorker(self._execute())
        await self._consume("payments", RESULTS_WORKER, worker.handle, worker.event_types)
        if self.settings.notifier:
            await self._start_notifier()

    async def _start_notifier(self) -> None:
        from engine.adapters.http_post import aiohttp_post
        from engine.adapters.pg_notifications import PostgresNotifications
        from engine.notifications import BOOKING_OUTCOMES, NOTIFIER, PAYMENT_OUTCOMES
        from engine.notifier import Notifier, WebhookDeliverer

        store = PostgresNotifications(await self._pool(3))
        post, close = aiohttp_post()
        self.closers.append(close)
        deliverer = WebhookDeliverer(store, post, self.settings.webhook_max_attempts, self.settings.webhook_timeout_s)
        notifier = Notifier(store, deliverer.wake)
        self.parts.update(notifier=notifier, webhooks=deliverer)
        for topic, outcomes in (("bookings", BOOKING_OUTCOMES), ("payments", PAYMENT_OUTCOMES)):
            name = f"{NOTIFIER}-{topic}"
            await self._consume(topic, name, notifier.handle, outcomes, notifier.processed, part=name)
        self._spawn("webhook-deliveries", deliverer.run(self.stop_event))

    async def _consume(
        self,
        topic: str,
        name: str,
        handler: Callable[[Any], Awaitable[None]],
        event_types: frozenset[str],
        processed: Callable[[list[str]], Awaitable[set[str]]] | None = None,
        part: str = "consumer",
        batch_max: int = 500,
        min_interval_s: float | None = None,
    ) -> None:
        """A consumer group on `topic` (one per live topic generation); `processed`: its inbox
        lookup (default: the saga's inbox); `part`: its name in `self.parts`; `min_interval_s`:
        at least this long between fetches while it keeps up (default: the saga's pacing,
        REZERV_SAGA_BATCH_INTERVAL_MS)."""
        from functools import partial

        from engine.adapters.kafka_consumer import MessageConsumer
        from engine.adapters.kafka_generations import GenerationalConsumer
        from engine.adapters.kafka_topics import TOPICS, list_topic_names
        from engine.adapters.pg_event_store import PostgresEventStore
        from engine.adapters.pg_generations import PostgresGenerationRegistry

        pool = await self._pool(2)
        if processed is None:
            store = PostgresEventStore(pool)

            async def processed(message_ids: list[str]) -> set[str]:
                return await store.processed(name, message_ids)

        prefix = self.settings.kafka_topic_prefix
        session = self.settings.kafka_session_timeout_ms
        if min_interval_s is None:
            min_interval_s = self.settings.saga_batch_interval_ms / 1000

        def reader(topic_name: str, group_id: str) -> MessageConsumer:
            return MessageConsumer(
                self.settings.kafka_bootstrap,
                topic_name,
                group_id,
                name,
                handler,
                processed,
                batch_max=batch_max,
                session_timeout_ms=session,
                heartbeat_interval_ms=max(100, session // 6),
                min_interval_s=min_interval_s,
                event_types=event_types,
                partitions=TOPICS[topic],
            )

        if not self._generation_ms():
            consumer = reader(prefix + topic, prefix + name)
            self.parts[part] = consumer
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
        self.parts[part] = generations
        self._spawn(f"consumer-{name}", generations.run(self.stop_event))


async def _logged(name: str, work: Awaitable[None]) -> None:
    try:
        await work
    except asyncio.CancelledError as exc:
        stray = reraise_if_cancelled(exc)  # a real cancellation (stop) goes on quietly
        log.error("service loop %s stopped: %s", name, stray)
        raise
    except Exception:
        log.exception("service loop %s stopped", name)
        raise
