"""Garbage-collector settings for processes that keep a large, long-lived heap (shards, drivers)
and for request loops (the API, the load generator).

A shard keeps every active booking in memory, hundreds of thousands of objects. CPython's full
(generation 2) collection walks all of them: measured in-process at 600k holds, 16 full
collections took 1.3 s of a 10 s run with pauses up to 183 ms, which showed up directly as p99
latency. So automatic full collections are switched off; young generations are collected as
usual (each walks only recent objects), and a full collection runs when the process is idle,
so cyclic garbage is still reclaimed without pausing anyone. Reference counting frees almost
everything anyway; the hot path avoids creating cycles (EntityHost.execute drops tracebacks).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between generation-0 collections (default 700)
GEN1_EVERY = 10  # generation-0 collections per generation-1 collection
NO_AUTOMATIC_FULL = 1_000_000_000


def tune() -> None:
    gc.set_threshold(YOUNG_THRESHOLD, GEN1_EVERY, NO_AUTOMATIC_FULL)


def collect_when_idle() -> int:
    """A full collection; call it when nothing is waiting for this process."""
    return gc.collect()


def settle_request_loop() -> None:
    """For a process that serves or sends requests in a loop, once it has built what it keeps: the
    API once it has started, the load generator once its users are spawned. Move everything built
    so far (the application, its routes and schemas, the imported modules; the generator's users,
    connections and population) out of the collector's sight with `gc.freeze`, and collect the
    young generations less often. Requests allocate much and keep little; without this every
    full collection walks the whole application again (in the load generator, a profile at 256
    users put 11.5% of its samples in the collector: BENCHMARKS.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, GEN1_EVERY, GEN1_EVERY)
