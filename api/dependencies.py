"""The external systems the API process talks to, each with a connect step and a health check.

A dependency that is down at start-up does not stop the API from starting: /healthz stays
green (the process is alive) while /readyz names what is missing, and each check tries to
connect again, so the API becomes ready as soon as the service is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.config import Settings

CHECK_TIMEOUT_S = 2.0
log = logging.getLogger("rezerv.api.dependencies")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    latency_ms: float
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "latency_ms": round(self.latency_ms, 2)}
        if self.detail:
            out["detail"] = self.detail
        return out


class Dependency(Protocol):
    name: str

    async def check(self) -> None:
        """Raise if the dependency cannot serve a request now."""

    async def close(self) -> None: ...


async def run_check(dep: Dependency) -> CheckResult:
    """The dependency's state for /readyz: a plain phrase for the client (anyone may read /readyz),
    the exception itself in the log."""
    start = time.perf_counter()
    try:
        await asyncio.wait_for(dep.check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        log.warning("readiness: %s gave no answer within %.0f s", dep.name, CHECK_TIMEOUT_S)
        return CheckResult(False, (time.perf_counter() - start) * 1000, f"no answer within {CHECK_TIMEOUT_S:.0f} s")
    except Exception as exc:
        log.warning("readiness: %s failed: %s: %s", dep.name, type(exc).__name__, exc)
        return CheckResult(False, (time.perf_counter() - start) * 1000, "not reachable")
    return CheckResult(True, (time.perf_counter() - start) * 1000)


@dataclass
class Postgres:
    url: str
    pool_size: int
    command_timeout_s: float = 10.0
    name: str = "postgres"
    pool: Any = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get_pool(self) -> Any:
        if self.pool is None:
            async with self._lock:
                if self.pool is None:
                    if not self.url:
                        raise RuntimeError("REZERV_DATABASE_URL is not set")
                    from engine.adapters.pg_pool import create_pool

                    self.pool = await create_pool(self.url, self.pool_size, self.command_timeout_s)
        return self.pool

    async def check(self) -> None:
        pool = await self.get_pool()
        await pool.fetchval("SELECT 1")

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()


async def pool_of(postgres: Postgres | None) -> Any:
    """The dependency's pool, connecting on first use; StoreUnavailable (a 503) when there is no
    PostgreSQL configured or it cannot be reached."""
    from engine.domain.errors import StoreUnavailable

    if postgres is None:
        raise StoreUnavailable("the API has no PostgreSQL dependency")
    try:
        return await postgres.get_pool()
    except Exception as exc:
        raise StoreUnavailable(f"PostgreSQL is not reachable: {type(exc).__name__}: {exc}") from exc


@dataclass
class Redis:
    url: str
    name: str = "redis"
    client: Any = None

    def get_client(self) -> Any:
        if self.client is None:
            if not self.url:
                raise RuntimeError("REZERV_REDIS_URL is not set")
            from engine.adapters.redis_client import create_redis

            self.client = create_redis(self.url)
        return self.client

    async def check(self) -> None:
        await self.get_client().ping()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


@dataclass
class Kafka:
    bootstrap: str
    name: str = "kafka"
    probe: Any = None

    async def check(self) -> None:
        if not self.bootstrap:
            raise RuntimeError("REZERV_KAFKA_BOOTSTRAP is not set")
        if self.probe is None:
            from engine.adapters.kafka_topics import BrokerProbe

            self.probe = BrokerProbe(self.bootstrap)
        try:
            await self.probe.check()
        except BaseException:
            await self.probe.close()  # a broker that restarted needs a new connection
            self.probe = None
            raise

    async def close(self) -> None:
        if self.probe is not None:
            await self.probe.close()


@dataclass
class Ray:
    address: str
    namespace: str
    name: str = "ray"

    def _connect(self) -> None:
        import ray

        if not ray.is_initialized():
            if not self.address:
                raise RuntimeError("REZERV_RAY_ADDRESS is not set")
            ray.init(
                address=self.address,
                namespace=self.namespace,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        ray.cluster_resources()  # type: ignore[no-untyped-call]

    async def check(self) -> None:
        await asyncio.to_thread(self._connect)

    async def close(self) -> None:
        return None


def dependencies_from(settings: Settings) -> list[Dependency]:
    return [
        Postgres(settings.database_url, settings.db_pool_size, settings.db_command_timeout_s),
        Redis(settings.redis_url),
        Kafka(settings.kafka_bootstrap),
        Ray(settings.ray_address, settings.namespace),
    ]
