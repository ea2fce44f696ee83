"""`rezerv bench saga`: how long a booking takes from hold to confirmed, under a steady load.

The whole saga runs on its own durable stack (PostgreSQL with fsync on, Valkey, the tansu broker,
Ray with the shards and the three saga services): hold -> outbox relay -> Kafka -> payment worker
(charge the wallet, record the decision, then confirm the booking) -> confirmed.

Load is open-loop: holds are placed at a fixed rate whatever the answers, as real customers do,
so a slow saga shows up as latency, not as a politely lower rate. The latency of a booking is
read from the event store, as the time between its TicketsHeld and its BookingConfirmed event
(both stamped by the same shard's clock): nothing is measured in the load generator.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.domain import codec
from engine.domain.commands import CreateEvent, Deposit, HoldTickets, TierSpec
from engine.domain.results import HoldGranted
from loadtest.bench_stack import BenchStack
from loadtest.dates import starts_in
from loadtest.measure import latency_summary

TICKET_PRICE = 1_000


@dataclass
class SagaRun:
    rate: int
    seconds: float
    placed: int = 0
    confirmed: int = 0
    other_endings: dict[str, int] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    drained_after_s: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    def line(self) -> str:
        cpu = ", ".join(f"{k} {v:.0f}%" for k, v in self.cpu.items())
        return (
            f"saga rate={self.rate:5d}/s placed={self.placed:6d} confirmed={self.confirmed:6d} "
            f"hold->confirmed p50={self.latency.get('p50_ms', 0):7.1f}ms p99={self.latency.get('p99_ms', 0):7.1f}ms "
            f"max={self.latency.get('max_ms', 0):7.1f}ms drained in {self.drained_after_s:.1f}s "
            f"other={self.other_endings} | CPU: {cpu}\n{'':5}"
            + ", ".join(f"{k}: p50 {v['p50_ms']:.0f}ms p99 {v['p99_ms']:.0f}ms" for k, v in self.stages.items())
        )


async def steady_holds(stack: BenchStack, event_id: str, customers: list[str], rate: int, seconds: float) -> list[str]:
    """Place `rate` holds a second for `seconds` (in 10 ms slices); returns the granted hold ids."""
    client = stack.client()
    granted: list[str] = []
    pending: list[asyncio.Future[Any]] = []
    start = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate) - sent
        for _ in range(due):
            who = customers[sent % len(customers)]
            pending.append(client.request(HoldTickets(event_id, f"{event_id}-{sent}", who, (("std", 1),), 600_000)))
            sent += 1
        await asyncio.sleep(0.01)
    for reply in await asyncio.gather(*pending):
        if isinstance(reply, HoldGranted):
            granted.append(reply.hold_id)
    return granted


async def confirmation_latencies(
    stack: BenchStack, stream: str, stages: dict[str, list[float]]
) -> tuple[list[float], dict[str, int]]:
    """Hold -> confirmed latencies (s) and the count of other endings; `stages` gets the two halves."""
    async with stack.event_store() as store:
        events = [e for e in await store.load_streams([stream]) if e.event_type != "EventCreated"]
        held: dict[str, int] = {}
        ended: dict[str, tuple[str, int]] = {}
        customers: set[str] = set()
        for e in events:
            event = codec.decode_record(e.data)
            if e.event_type == "TicketsHeld":
                held[event.hold_id] = event.at
                customers.add(event.customer_id)
            else:
                ended[event.hold_id] = (e.event_type, event.at)
        latencies = [
            (ended[h][1] - at) / 1000 for h, at in held.items() if ended.get(h, ("", 0))[0] == "BookingConfirmed"
        ]
        wallet_events = await store.load_streams([f"wallet/{c}" for c in customers])
    decisions = (codec.decode_record(e.data) for e in wallet_events if e.event_type == "PaymentSucceeded")
    decided = {d.saga_id: d.at for d in decisions if d.saga_id in held}
    stages["to decision"] = [(decided[h] - at) / 1000 for h, at in held.items() if h in decided]
    stages["to confirmed"] = [
        (ended[h][1] - decided[h]) / 1000
        for h in held
        if h in decided and ended.get(h, ("", 0))[0] == "BookingConfirmed"
    ]
    others: dict[str, int] = {}
    for kind, _ in ended.values():
        if kind != "BookingConfirmed":
            others[kind] = others.get(kind, 0) + 1
    others["still open"] = sum(1 for h in held if h not in ended)
    return latencies, others


async def run_rate(stack: BenchStack, rate: int, seconds: float, drain_timeout_s: float = 60.0) -> SagaRun:
    tag = uuid.uuid4().hex[:6]
    client = stack.client()
    customers = [f"bench-{tag}-{i}" for i in range(200)]
    await client.execute_many([Deposit(c, "seed", 10**9) for c in customers])
    event_id = f"saga-{tag}-{rate}"
    await client.execute(CreateEvent(event_id, "Saga", "Bench", starts_in(90), (TierSpec("std", TICKET_PRICE, 10**8),)))
    sampler = stack.cpu_sampler()
    sampler.start()
    granted = await steady_holds(stack, event_id, customers, rate, seconds)
    cpu = sampler.stop()
    run = SagaRun(rate, seconds, placed=len(granted), cpu=cpu)
    started = time.perf_counter()
    stream = f"event/{event_id}"
    stages: dict[str, list[float]] = {}
    while True:
        latencies, others = await confirmation_latencies(stack, stream, stages)
        if others["still open"] == 0 or time.perf_counter() - started > drain_timeout_s:
            break
        await asyncio.sleep(0.5)
    run.drained_after_s = time.perf_counter() - started
    run.confirmed = len(latencies)
    run.other_endings = {k: v for k, v in others.items() if v}
    run.latency = latency_summary(latencies)
    run.stages = {name: latency_summary(values) for name, values in stages.items()}
    return run


async def run(args: Any) -> list[SagaRun]:
    from actors import gc_tuning

    gc_tuning.tune()
    stack = BenchStack.from_args(args, with_saga=True)
    results: list[SagaRun] = []
    await stack.start()
    try:
        await stack.warm_up()
        await run_rate(stack, 50, 3.0)  # warm every path (consumer groups joined, pools open)
        for rate in args.rates:
            results.append(await run_rate(stack, rate, args.window))
            print(results[-1].line(), flush=True)
    finally:
        await stack.stop()
    if args.json:
        from loadtest.bench_engine import write_json

        report = {"machine": stack.machine, "settings": stack.describe(), "results": [r.__dict__ for r in results]}
        write_json(Path(args.json), report)
    return results
