"""The servers a benchmark runs on: its own, started for the run, durable like production.

PostgreSQL runs with fsync and synchronous_commit on (every acknowledged hold is on disk);
Valkey and a local Ray (2 CPUs) are started for the run. External servers can be used instead
with REZERV_DATABASE_URL / REZERV_REDIS_URL. Everything is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from actors.client import InventoryClient, ray_client
from actors.factory import shard_handle
from engine.adapters.pg_event_store import PostgresEventStore
from engine.adapters.pg_migrations import migrate_url
from engine.adapters.pg_pool import create_pool
from engine.config import Settings
from loadtest.measure import CpuSampler, machine_description
from stack.processes import free_port
from stack.servers import RAY_ENV, EmbeddedKafka, EmbeddedPostgres, EmbeddedValkey


class BenchStack:
    def __init__(self, settings: Settings, keep_dir: bool = False, with_saga: bool = False) -> None:
        self.settings = settings
        self.keep_dir = keep_dir
        self.with_saga = with_saga
        self.root: Path | None = None
        self.pg: EmbeddedPostgres | None = None
        self.valkey: EmbeddedValkey | None = None
        self.kafka: EmbeddedKafka | None = None
        self.handles: list[Any] = []
        self.services: dict[str, Any] = {}
        self.clients: list[InventoryClient] = []
        self.machine = machine_description()

    @classmethod
    def from_args(cls, args: Any, with_saga: bool = False) -> BenchStack:
        base = Settings.from_env()
        tag = uuid.uuid4().hex[:6]
        settings = base.replace(
            namespace=f"bench-{tag}",
            kafka_topic_prefix=f"bench-{tag}-",
            shard_count=args.shards,
            batch_max=args.batch_max,
            calls_in_flight=args.calls_in_flight,
            commit_max=args.commit_max,
            commits_in_flight=args.commits_in_flight,
            db_pool_size=args.db_pool,
        )
        return cls(settings, with_saga=with_saga)

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "shards": s.shard_count,
            "batch_max": s.batch_max,
            "calls_in_flight": s.calls_in_flight,
            "commit_max": s.commit_max,
            "commits_in_flight": s.commits_in_flight,
            "db_pool_size": s.db_pool_size,
            "postgres": "fsync=on synchronous_commit=on" if self.pg else "external",
        }

    async def start(self) -> None:
        s = self.settings
        if not s.database_url or not s.redis_url or (self.with_saga and not s.kafka_bootstrap):
            self.root = Path(tempfile.mkdtemp(prefix="rezerv-bench-"))
            self.root.chmod(0o755)
        if not s.database_url:
            self.pg = EmbeddedPostgres(self.root / "pg", free_port(), durable=True)  # type: ignore[operator]
            await asyncio.to_thread(self.pg.start)
            s = s.replace(database_url=self.pg.url)
        if not s.redis_url:
            self.valkey = EmbeddedValkey(self.root / "valkey", free_port(), durable=False)  # type: ignore[operator]
            await asyncio.to_thread(self.valkey.start)
            s = s.replace(redis_url=self.valkey.url)
        if self.with_saga and not s.kafka_bootstrap:
            self.kafka = EmbeddedKafka(self.root / "logs", free_port())  # type: ignore[operator]
            await asyncio.to_thread(self.kafka.start)
            s = s.replace(kafka_bootstrap=self.kafka.bootstrap, kafka_session_timeout_ms=3000)
        self.settings = s
        await migrate_url(s.database_url)
        import ray

        from stack.ray_auth import use_token

        use_token((self.root or Path(tempfile.mkdtemp(prefix="rezerv-bench-"))) / "ray_auth_token")
        if not ray.is_initialized():
            os.environ.update(RAY_ENV)  # ray.init starts the raylet, which reads it from here
            ray.init(
                num_cpus=2,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
            )
        self.handles = [shard_handle(s, i) for i in range(s.shard_count)]
        self.pids = {"shards": [p["pid"] for p in await asyncio.gather(*(h.ping.remote() for h in self.handles))]}
        if self.with_saga:
            from actors.factory import service_handle
            from actors.services import ROLES
            from engine.adapters.kafka_topics import ensure_topics

            await ensure_topics(s.kafka_bootstrap, prefix=s.kafka_topic_prefix)
            self.services = {role: service_handle(s, role) for role in ROLES}
            started = await asyncio.gather(*(self.services[r].start.remote() for r in ROLES))
            self.pids["saga services"] = [p["pid"] for p in started]

    def client(self) -> InventoryClient:
        """A client of the run's shards, closed by `stop`."""
        client = ray_client(self.settings)
        self.clients.append(client)
        return client

    async def warm_up(self) -> None:
        """Open every shard's pool and connections before anything is measured."""
        await asyncio.gather(*(h.stats.remote() for h in self.handles))

    async def shard_stats(self) -> dict[str, float]:
        stats = await asyncio.gather(*(h.stats.remote() for h in self.handles))
        keys = (
            "commits",
            "committed_events",
            "commands",
            "batches",
            "commit_s",
            "apply_s",
            "durability_wait_s",
            "call_s",
            "decode_s",
            "encode_s",
        )
        return {key: sum(float(s[key]) for s in stats) for key in keys}

    def cpu_sampler(self) -> CpuSampler:
        roles: dict[str, list[int]] = {"driver": [os.getpid()], "shards": self.pids["shards"]}
        if "saga services" in self.pids:
            roles["saga services"] = self.pids["saga services"]
        if self.kafka and self.kafka.process and self.kafka.process.pid:
            roles["kafka"] = [self.kafka.process.pid]
        if self.pg and self.pg.process and self.pg.process.pid:
            roles["postgres"] = [self.pg.process.pid]
        if self.valkey and self.valkey.process and self.valkey.process.pid:
            roles["valkey"] = [self.valkey.process.pid]
        return CpuSampler(roles)

    @contextlib.asynccontextmanager
    async def event_store(self) -> AsyncIterator[PostgresEventStore]:
        """The run's event store over a small pool of its own, closed on exit (for audits)."""
        pool = await create_pool(self.settings.database_url, 2)
        try:
            yield PostgresEventStore(pool)
        finally:
            await pool.close()

    async def stop(self) -> None:
        import ray

        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        for service in self.services.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(service.stop.remote(), 10)
        for handle in [*self.services.values(), *self.handles]:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(handle, no_restart=True)
        if ray.is_initialized():
            ray.shutdown()
        if self.kafka:
            await asyncio.to_thread(self.kafka.stop)
        if self.valkey:
            await asyncio.to_thread(self.valkey.stop)
        if self.pg:
            await asyncio.to_thread(self.pg.stop)
        if self.root and not self.keep_dir:
            import shutil

            shutil.rmtree(self.root, ignore_errors=True)
