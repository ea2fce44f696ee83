"""`rezerv bench engine`: the actor path without HTTP, measured and audited.

Driver (this process) -> coalescing client -> Ray shard actors -> group commit in PostgreSQL
(fsync and synchronous_commit on). Callers are asyncio tasks, each with one hold in flight at
a time. Every scenario ends with an audit against the event store (loadtest/audit.py).

Scenarios (the inventory issue's list):
- hot-sellout: one event, 10,000 tickets, 100,000 attempts, swept over caller counts;
- hot-sustained: one event that cannot sell out, for a fixed window (the sustained rate);
- many-events: 1,000 events with random traffic;
- cars: 500 cars with random, overlapping intervals.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from actors import gc_tuning
from actors.client import InventoryClient
from engine.domain.commands import Command, CreateEvent, HoldCar, HoldTickets, RegisterCar, TierSpec
from engine.domain.results import HoldGranted
from loadtest.audit import AuditReport, audit_streams
from loadtest.bench_stack import BenchStack
from loadtest.dates import starts_in
from loadtest.measure import latency_summary

HOLD_TTL_MS = 3_600_000


@dataclass
class RunResult:
    scenario: str
    callers: int
    attempts: int = 0
    granted: int = 0
    refused: int = 0
    errors: int = 0
    seconds: float = 0.0
    latency: dict[str, float] = field(default_factory=dict)
    avg_batch_per_call: float = 0.0
    avg_events_per_commit: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def attempts_per_s(self) -> float:
        return self.attempts / self.seconds if self.seconds else 0.0

    @property
    def granted_per_s(self) -> float:
        return self.granted / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        cpu = ", ".join(f"{k} {v:.0f}%" for k, v in self.cpu.items())
        return (
            f"{self.scenario:14} callers={self.callers:5d} attempts/s={self.attempts_per_s:9,.0f} "
            f"granted/s={self.granted_per_s:9,.0f} p50={self.latency.get('p50_ms', 0):6.1f}ms "
            f"p99={self.latency.get('p99_ms', 0):6.1f}ms batch/call={self.avg_batch_per_call:6.1f} "
            f"events/commit={self.avg_events_per_commit:7.1f} errors={self.errors} "
            f"audit={'OK' if self.audit.get('ok') else 'FAILED'} | CPU: {cpu}"
            + (f"\n{'':15}shard ms/call {self.extra.get('shard_ms_per_call')} commit ms {self.extra.get('commit_ms')}")
            + (f"\n{'':15}client ms/call {self.extra.get('client_ms_per_call')}")
        )

    def as_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["attempts_per_s"] = round(self.attempts_per_s)
        out["granted_per_s"] = round(self.granted_per_s)
        return out


MakeCommand = Callable[[int], Command]


async def drive(
    client: InventoryClient,
    make: MakeCommand,
    callers: int,
    attempts: int | None = None,
    window_s: float | None = None,
) -> tuple[list[float], dict[str, HoldGranted], int, int, float, int]:
    """Run `callers` concurrent callers until `attempts` are made or `window_s` passes.

    Each caller has one command in flight and sends its next one only when the answer to the
    previous one is in (a closed loop). A caller is a chain of reply callbacks rather than a
    coroutine or a future: resuming 1,024 coroutines per batch of answers was half of this load
    generator's CPU, and on a 2-core machine that CPU is taken from the system being measured.

    Returns latencies, granted holds by id, refusals, errors, elapsed seconds, attempts made."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    granted: dict[str, HoldGranted] = {}
    counters = [0, 0, 0, callers]  # next attempt, refused, errors, callers still running
    finished: asyncio.Future[None] = loop.create_future()
    perf = time.perf_counter
    deadline = perf() + window_s if window_s else float("inf")
    limit = attempts if attempts is not None else 1 << 62
    request_then = client.request_then

    def send() -> None:
        i = counters[0]
        if i >= limit or perf() >= deadline:
            counters[3] -= 1
            if counters[3] == 0 and not finished.done():
                finished.set_result(None)
            return
        counters[0] = i + 1
        started = perf()
        request_then(make(i), lambda reply: answered(reply, started))

    def answered(reply: Any, started: float) -> None:
        latencies.append(perf() - started)
        if type(reply) is HoldGranted:
            granted[reply.hold_id] = reply
        elif getattr(reply, "retryable", False):
            counters[2] += 1
        else:
            counters[1] += 1
        send()

    start = perf()
    for _ in range(callers):
        send()
    await finished
    return latencies, granted, counters[1], counters[2], perf() - start, counters[0]


class EngineBench:
    def __init__(self, stack: BenchStack, client: InventoryClient) -> None:
        self.stack = stack
        self.client = client
        self.run_id = uuid.uuid4().hex[:6]

    async def _measure(
        self,
        scenario: str,
        callers: int,
        make: MakeCommand,
        streams: list[str],
        attempts: int | None = None,
        window_s: float | None = None,
        earlier: dict[str, HoldGranted] | None = None,
    ) -> RunResult:
        """Measure one run; `earlier` are holds granted before it (a warm-up) that the audit must expect."""
        calls0 = self.client.stats()
        shard0 = await self.stack.shard_stats()
        sampler = self.stack.cpu_sampler()
        sampler.start()
        latencies, granted, refused, errors, seconds, made = await drive(self.client, make, callers, attempts, window_s)
        cpu = sampler.stop()
        calls1 = self.client.stats()
        shard1 = await self.stack.shard_stats()
        commits = shard1["commits"] - shard0["commits"]
        events = shard1["committed_events"] - shard0["committed_events"]
        result = RunResult(scenario, callers, made, len(granted), refused, errors, seconds, latency_summary(latencies))
        result.avg_batch_per_call = (calls1["commands"] - calls0["commands"]) / max(
            1, calls1["calls"] - calls0["calls"]
        )
        result.avg_events_per_commit = events / max(1, commits)
        batches = max(1.0, shard1["batches"] - shard0["batches"])
        result.extra["shard_ms_per_call"] = {
            k: round(1000 * (shard1[k] - shard0[k]) / batches, 2)
            for k in ("call_s", "decode_s", "apply_s", "durability_wait_s", "encode_s")
        }
        client_calls = max(1, calls1["calls"] - calls0["calls"])
        result.extra["client_ms_per_call"] = {
            k: round(1000 * (calls1[k] - calls0[k]) / client_calls, 2) for k in ("round_trip_s", "resolve_s")
        }
        result.extra["commit_ms"] = round(1000 * (shard1["commit_s"] - shard0["commit_s"]) / max(1, commits), 2)
        result.cpu = cpu
        report = await self.audit(streams, {**(earlier or {}), **granted})
        result.audit = report.as_json()
        return result

    async def audit(self, streams: list[str], granted: dict[str, HoldGranted]) -> AuditReport:
        async with self.stack.event_store() as store:
            return await audit_streams(store, streams, granted)

    # ---- scenarios ----------------------------------------------------------------------------
    async def hot_sellout(self, callers: int, tickets: int = 10_000, attempts: int = 100_000) -> RunResult:
        event_id = f"sellout-{self.run_id}-{callers}"
        await self.client.execute(
            CreateEvent(event_id, "Hot", "Arena", starts_in(90), (TierSpec("std", 5000, tickets),))
        )

        def make(i: int) -> Command:
            return HoldTickets(event_id, f"{event_id}-{i}", f"c{i % 5000}", (("std", 1),), HOLD_TTL_MS)

        result = await self._measure("hot-sellout", callers, make, [f"event/{event_id}"], attempts=attempts)
        result.extra.update(tickets=tickets, sold=result.audit["tickets_sold"])
        return result

    async def hot_sustained(self, callers: int, window_s: float, warmup_s: float = 2.0) -> RunResult:
        event_id = f"sustained-{self.run_id}-{callers}"
        await self.client.execute(CreateEvent(event_id, "Huge", "Field", starts_in(90), (TierSpec("std", 100, 10**9),)))
        counter = iter(range(1 << 62))

        def make(_: int) -> Command:
            n = next(counter)
            return HoldTickets(event_id, f"{event_id}-{n}", f"c{n % 5000}", (("std", 1),), HOLD_TTL_MS)

        warm: dict[str, HoldGranted] = {}
        if warmup_s:
            _, warm, _, _, _, _ = await drive(self.client, make, callers, window_s=warmup_s)
        streams = [f"event/{event_id}"]
        return await self._measure("hot-sustained", callers, make, streams, window_s=window_s, earlier=warm)

    async def many_events(
        self, callers: int, events: int = 1000, attempts: int = 100_000, seats: int = 120
    ) -> RunResult:
        ids = [f"many-{self.run_id}-{i}" for i in range(events)]
        await self.client.execute_many(
            [
                CreateEvent(e, "E", "V", starts_in(90), (TierSpec("a", 3000, seats), TierSpec("b", 9000, 10)))
                for e in ids
            ]
        )
        rng = random.Random(7)
        picks = [(rng.randrange(events), rng.random() < 0.9, rng.randint(1, 4)) for _ in range(attempts)]

        def make(i: int) -> Command:
            event, cheap, n = picks[i]
            return HoldTickets(
                ids[event], f"m{self.run_id}-{i}", f"c{i % 5000}", (("a" if cheap else "b", n),), HOLD_TTL_MS
            )

        result = await self._measure("many-events", callers, make, [f"event/{e}" for e in ids], attempts=attempts)
        result.extra.update(events=events, sold=result.audit["tickets_sold"], capacity=result.audit["capacity"])
        return result

    async def cars(self, callers: int, cars: int = 500, attempts: int = 50_000) -> RunResult:
        ids = [f"car-{self.run_id}-{i}" for i in range(cars)]
        await self.client.execute_many([RegisterCar(c, "Volvo", "V60", "Oslo", 10_000, 1, 7, 1_000) for c in ids])
        rng = random.Random(11)
        first = datetime.now(UTC).date() + timedelta(days=1)
        picks = [(rng.randrange(cars), rng.randrange(120), rng.randint(1, 10)) for _ in range(attempts)]

        def make(i: int) -> Command:
            car, offset, days = picks[i]
            start = first + timedelta(days=offset)
            return HoldCar(
                ids[car], f"r{self.run_id}-{i}", f"c{i % 5000}", start, start + timedelta(days=days), HOLD_TTL_MS
            )

        result = await self._measure("cars", callers, make, [f"car/{c}" for c in ids], attempts=attempts)
        result.extra.update(cars=cars)
        return result


def today() -> date:
    return datetime.now(UTC).date()


async def run(args: Any) -> list[RunResult]:
    gc_tuning.tune()  # the driver keeps every granted hold for the audit: a large heap too
    stack = BenchStack.from_args(args)
    results: list[RunResult] = []
    await stack.start()
    try:
        client = stack.client()
        bench = EngineBench(stack, client)
        await stack.warm_up()
        scenarios = args.scenario
        if "hot-sellout" in scenarios:
            for callers in args.callers:
                results.append(await bench.hot_sellout(callers))
                print(results[-1].line(), flush=True)
        if "hot-sustained" in scenarios:
            results.append(await bench.hot_sustained(args.sustained_callers, args.window))
            print(results[-1].line(), flush=True)
        if "many-events" in scenarios:
            results.append(await bench.many_events(args.sustained_callers))
            print(results[-1].line(), flush=True)
        if "cars" in scenarios:
            results.append(await bench.cars(args.sustained_callers))
            print(results[-1].line(), flush=True)
    finally:
        await stack.stop()
    if args.json:
        report = {"machine": stack.machine, "settings": stack.describe(), "results": [r.as_json() for r in results]}
        write_json(Path(args.json), report)
    return results


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
