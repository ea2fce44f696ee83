"""The saga's long-running services, each a Ray actor (made remote in actors/factory.py).

- "outbox": the outbox relay (event log -> Kafka), the bookings, catalog and ledger projections
  (event log -> read models: bookings and the sales counters beside them, engine/sales.py;
  browsing; wallet statements), the notifier (engine/notifier.py: the outcomes, read from the log
  as the messages the relay publishes, to stored notifications and their webhook deliveries;
  engine/log_consumer.py says why from the log) and the saga supervisor (re-sends what the
  broker lost, expires orphaned holds);
- "payments": the payment worker, the one consumer group of the bookings topic, which charges each
  new booking in its customer's wallet and confirms or releases it (engine/saga.py).

They share few processes rather than taking a Ray worker process each: with the notifier in a
process of its own the saga services took 105 MB more on an idle stack (BENCHMARKS.md section 3).
Until 2026-12-01 a third role, "results", confirmed or released each booking from its payment
decision and then only hosted the notifier; the payment worker confirms in the batch that paid.
Until 2026-12-04 the sales read model and the notifier were consumer groups of the topics, in the
payments service; later that day the sales read model was a log consumer of its own, until the
bookings projection took over its counters.

What each role is built from is in actors/wiring.py (the composition root of the Ray
processes); this class is what Ray needs of the process: start, stop, ping, stats, metrics.

Ray restarts a crashed service; consumers resume from their committed offsets, log readers from
their checkpoints in PostgreSQL, and every step is idempotent, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from actors import gc_tuning, process_metrics
from actors.wiring import ServiceWiring
from engine import tracing
from engine.cancellation import reraise_if_cancelled
from engine.config import Settings

log = logging.getLogger("rezerv.services")

ROLES = ("outbox", "payments")


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
                wiring = ServiceWiring(self.settings, self.stop_event, self._spawn, self.closers, self.parts)
                await wiring.start(self.role)
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
                "Saga steps the supervisor re-sent (holds, endings), bookings it completed, holds it expired, "
                "inbox rows purged",
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

    def _spawn(self, name: str, work: Awaitable[None]) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(_logged(name, work), name=name))


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
