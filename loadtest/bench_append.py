"""`rezerv bench append`: the two shapes of a group commit, side by side, on a durable PostgreSQL.

Why: a group commit is the one write every hold waits for, and at the loads of a flash sale with
16-64 users it is small (a few to a few dozen events). The event store appends a small group in
one statement and a large one with COPY (engine/adapters/pg_event_store.py); where one shape
stops paying and the other starts was chosen from this benchmark's figures.

For each group size (streams x events per stream) it runs the same appends through each shape,
whatever the size (the store itself picks by ONE_STATEMENT_MAX and ONE_STATEMENT_STREAMS_MAX), in
turn, A B A B, one append at a time as a shard does, and reports per commit: the time from calling
`append` to its answer, the CPU of this process (asyncpg and the store's code) and the CPU of
the PostgreSQL processes (loadtest/measure.py's CpuSampler). PostgreSQL is started for the run
with `rezerv up`'s settings (fsync, synchronous_commit and full_page_writes on) in a temporary
directory, and stopped after.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg

from engine.adapters.pg_event_store import ONE_STATEMENT_MAX, ONE_STATEMENT_STREAMS_MAX, PostgresEventStore
from engine.adapters.pg_pool import create_entity_pool, create_writer_pool
from engine.ports import NewEvent, StreamAppend
from loadtest.measure import CpuSampler, latency_summary, machine_description
from loadtest.scratch_postgres import durable_postgres

GROUP_SIZE = re.compile(r"[1-9][0-9]*(x[1-9][0-9]*)?")  # STREAMSxEVENTS, each 1 or more
SHAPES = {"one statement": sys.maxsize, "copy": 0}  # the store's limits that force each
EVENT = NewEvent("TicketsHeld", b"x" * 120)  # about a hold's event, msgpack-encoded


@dataclass(frozen=True)
class Size:
    streams: int
    events: int  # per stream

    @classmethod
    def parse(cls, text: str) -> Size:
        """`STREAMSxEVENTS`, e.g. 1x9: one stream, nine events (`7` alone: seven streams of one)."""
        if not GROUP_SIZE.fullmatch(text):
            raise ValueError(f"a group size is STREAMSxEVENTS, at least one stream and one event: {text!r}")
        streams, _, events = text.partition("x")
        return cls(int(streams), int(events or 1))

    def __str__(self) -> str:
        return f"{self.streams}x{self.events}"


@dataclass(frozen=True)
class Figures:
    shape: str
    size: str
    commits: int
    events_stored: int
    commits_per_s: float
    p50_ms: float
    p99_ms: float
    caller_us_per_commit: float
    postgres_us_per_commit: float


async def measure(
    pool: asyncpg.Pool, writers: asyncpg.Pool, shape: str, size: Size, commits: int, postgres_pids: Sequence[int] = ()
) -> Figures:
    """`commits` appends of `size` in `shape`, one after the other, on fresh streams. The CPU of
    this process, and of the PostgreSQL processes below `postgres_pids` (none: 0), per commit."""
    limit = SHAPES[shape]
    store = PostgresEventStore(pool, writers, one_statement_max=limit, one_statement_streams_max=limit)
    tag = uuid.uuid4().hex[:8]
    versions = {f"bench/{tag}-{i}": 0 for i in range(size.streams)}
    for stream in versions:
        versions[stream] = (await store.claim(stream, 1, "bench")).version
    sampler = CpuSampler({"driver": [os.getpid()], "postgres": list(postgres_pids)})
    sampler.start()
    started = time.perf_counter()
    times: list[float] = []
    for _ in range(commits):
        group = [StreamAppend(s, v, 1, [EVENT] * size.events) for s, v in versions.items()]
        t = time.perf_counter()
        result = await store.append(group)
        times.append(time.perf_counter() - t)
        if result.failed:
            raise RuntimeError(f"the benchmark's own appends failed for {sorted(result.failed)}")
        for stream in versions:
            versions[stream] += size.events
    elapsed = time.perf_counter() - started
    cpu = sampler.stop()  # percent of one core over the loop

    def us_per_commit(role: str) -> float:
        return round(cpu.get(role, 0.0) / 100 * elapsed / commits * 1e6)

    stored = await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = ANY($1)", list(versions))
    latency = latency_summary(times)
    return Figures(
        shape,
        str(size),
        commits,
        int(stored),
        round(commits / elapsed, 1),
        round(latency["p50_ms"], 2),
        round(latency["p99_ms"], 2),
        us_per_commit("driver"),
        us_per_commit("postgres"),
    )


def commits_for(size: Size, events: int) -> int:
    """Enough commits of `size` to append about `events` events, and at least 200."""
    return max(200, events // (size.streams * size.events))


async def run(sizes: list[Size], events: int, rounds: int) -> list[Figures]:
    """Each size in each shape, `rounds` times, on a PostgreSQL of its own."""
    async with durable_postgres("rezerv-bench-append-") as pg:
        postgres = [pg.process.pid] if pg.process and pg.process.pid else []
        pool = await create_entity_pool(pg.url, 2)
        writers = await create_writer_pool(pg.url, 1)
        try:
            results = []
            for size in sizes:
                for _ in range(rounds):
                    for shape in SHAPES:
                        figures = await measure(pool, writers, shape, size, commits_for(size, events), postgres)
                        print(_line(figures), flush=True)
                        results.append(figures)
            return results
        finally:
            await pool.close()
            await writers.close()


def _line(f: Figures) -> str:
    return (
        f"{f.size:>7} {f.shape:>13}: {f.commits_per_s:7.0f} commits/s, p50 {f.p50_ms:5.2f} ms, p99 {f.p99_ms:5.2f} ms, "
        f"caller {f.caller_us_per_commit:5.0f} us, PostgreSQL {f.postgres_us_per_commit:5.0f} us per commit"
    )


def main(sizes: list[Size], events: int, rounds: int, json_path: str = "") -> int:
    import uvloop

    print(
        f"machine: {machine_description()}; the store appends up to {ONE_STATEMENT_MAX} events over "
        f"{ONE_STATEMENT_STREAMS_MAX} streams in one statement"
    )
    results = uvloop.run(run(sizes, events, rounds))
    if json_path:
        Path(json_path).write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0
