"""`rezerv bench snapshot`: how long saving a hot event's snapshot holds the event loop, whole or in parts.

Why: the snapshot of a hot event holds every booking still in memory (about 100,000 in a flash
sale at 2,000 bookings a second), megabytes. A shard encodes it in pieces with its event loop
free between them (engine/domain/snapshot_pieces.py); sent whole, the pieces were first joined
and then written by asyncpg in one step of the loop, and every hold in flight waited for it
(BENCHMARKS.md, "what stalls the hot shard"). The store now copies the pieces one message at a
time (`EventStore.save_snapshot_in_parts`). This measures both on the same snapshot, in turn:
per save, its time, this process's CPU and the longest the event loop was held (a task asking to wake every
1 ms records the longest gap between its wake-ups). On an idle machine these are the
operations' own costs; on a loaded one a process can lose its core within any step, so a longer
step is stretched more.

PostgreSQL is started for the run with `rezerv up`'s durable settings in a temporary directory.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.adapters.pg_event_store import PostgresEventStore
from engine.adapters.pg_pool import create_entity_pool
from engine.domain.commands import ConfirmBooking, CreateEvent, HoldTickets, TierSpec
from engine.domain.snapshot_pieces import SnapshotInPieces
from engine.domain.tickets import TicketedEvent
from engine.ports import EventStore, Snapshot
from loadtest.measure import machine_description
from loadtest.scratch_postgres import durable_postgres

HOW = ("whole", "in parts")
PIECE = 2000  # bookings per piece: the shards' default (engine/hosting.py, HostConfig.snapshot_piece)
TICK_S = 0.001  # uvloop's timers have a resolution of 1 ms: a shorter sleep would spin and count as CPU


@dataclass(frozen=True)
class Figures:
    how: str
    bookings: int
    megabytes: float
    parts: int
    save_ms: float
    cpu_ms: float  # this process's CPU over the save (asyncpg and the store's code, and the watcher's wake-ups)
    loop_held_max_ms: float  # the longest gap between two wake-ups of a task asking for 1 ms
    loop_held_next_ms: float  # the second longest


def _a_year_after(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000 + 365 * 86400, tz=UTC).isoformat()


def hot_event(bookings: int, now_ms: int) -> TicketedEvent:
    """An event with `bookings` confirmed bookings of 1-4 tickets, as the flash sale leaves it."""
    event = TicketedEvent("flash")
    tier = TierSpec("ga", 5000, bookings * 4)
    created = CreateEvent(
        entity_id="flash", title="Flash", venue="Hall", starts_at=_a_year_after(now_ms), tiers=(tier,)
    )
    event.handle(created, now_ms)
    for i in range(bookings):
        hold_id = f"{i:032x}"  # as long as the API's hold ids
        customer = f"customer-{i % 1000:05d}"
        held = HoldTickets(
            entity_id="flash", hold_id=hold_id, customer_id=customer, quantities=(("ga", 1 + i % 4),), ttl_ms=600_000
        )
        event.handle(held, now_ms)
        event.handle(
            ConfirmBooking(entity_id="flash", booking_kind="event", hold_id=hold_id, payment_ref=f"saga-{hold_id}"),
            now_ms,
        )
    if len(event.bookings) != bookings:
        raise RuntimeError(f"the event holds {len(event.bookings)} bookings, not {bookings}")
    return event


def parts_of(event: TicketedEvent) -> tuple[int, list[bytes]]:
    """The event's snapshot in pieces, as a shard encodes it: its version and the pieces."""
    pieces = SnapshotInPieces(event)
    while not pieces.encode_next(PIECE):
        pass
    return pieces.version, pieces.finish()


async def save(store: EventStore, how: str, stream: str, version: int, parts: list[bytes]) -> None:
    if how == "whole":  # as a shard did before: the pieces joined, then one statement
        await store.save_snapshot(Snapshot(stream, version, b"".join(parts)))
    else:
        await store.save_snapshot_in_parts(stream, version, parts)


async def measure(store: EventStore, how: str, stream: str, version: int, parts: list[bytes], bookings: int) -> Figures:
    """One save of the snapshot `parts` (of an event of `bookings` bookings) at `version`, with the
    loop watched; checks what is stored."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def watch() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.02)  # the watcher's own first steps out of the way
    started, cpu = time.perf_counter(), time.process_time()
    await save(store, how, stream, version, parts)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    done.set()
    await watcher
    stored = await store.load_snapshot(stream)
    if stored is None or stored.version != version or stored.state != b"".join(parts):
        raise RuntimeError(f"the snapshot saved {how} is not what was stored")
    gaps.sort(reverse=True)
    size = sum(map(len, parts))
    return Figures(
        how,
        bookings,
        round(size / 1e6, 1),
        len(parts),
        round(took * 1000, 1),
        round(cpu * 1000, 1),
        round(gaps[0] * 1000, 1),
        round(gaps[1] * 1000, 1),
    )


async def run(bookings: int, rounds: int) -> list[Figures]:
    event = hot_event(bookings, int(time.time() * 1000))
    async with durable_postgres("rezerv-bench-snapshot-") as pg:
        pool = await create_entity_pool(pg.url, 2)
        try:
            store = PostgresEventStore(pool)
            version, parts = parts_of(event)
            results: list[Figures] = []
            for r in range(rounds):
                for how in HOW:
                    # a newer version each time, so each save really writes
                    figures = await measure(store, how, "event/flash", version + len(results), parts, bookings)
                    print(_line(r + 1, figures), flush=True)
                    results.append(figures)
            return results
        finally:
            await pool.close()


def _line(round_: int, f: Figures) -> str:
    return (
        f"round {round_} {f.how:>8}: {f.megabytes} MB in {f.parts} parts, "
        f"saved in {f.save_ms:6.1f} ms ({f.cpu_ms:5.1f} ms of CPU), "
        f"the event loop held at most {f.loop_held_max_ms:5.1f} ms (next {f.loop_held_next_ms:4.1f})"
    )


def main(bookings: int, rounds: int, json_path: str = "") -> int:
    import uvloop

    print(f"machine: {machine_description()}; a hot event of {bookings} confirmed bookings, pieces of {PIECE}")
    results = uvloop.run(run(bookings, rounds))
    if json_path:
        Path(json_path).write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0
