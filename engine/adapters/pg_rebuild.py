"""Rebuilding a read model from the log into new tables, and swapping them in while it is read.

Why: a read model is derived data. When its code changes (a new column, a bug fixed in a fold)
or its tables are damaged, the log still holds everything, so the model is rebuilt from it. The
API and the live projection keep running meanwhile.

How (`rebuild`):
1. New, empty tables in a staging schema ``rebuild_<model>``: the same columns, constraints and
   indexes with the same names (engine/migrations/), cloned from the live ones.
2. The model's own projection code runs from the start of the log into them, under a checkpoint
   of its own (``<checkpoint>:rebuild``), on connections whose search_path puts the staging schema
   first: the projection's SQL is unchanged and writes the staging tables, while the log and the
   checkpoints stay the live ones.
3. Once it has caught up, one short transaction swaps them: it locks the live checkpoint row
   first (the order every projection batch takes its locks in, engine/adapters/pg_projection.py,
   so the two never deadlock; a live batch waits), moves the live tables to ``retired_<model>``
   and the rebuilt ones into their place, and sets the live checkpoint to the rebuild's. Readers
   wait on the tables' locks only for that transaction.
4. The live projection's next batch finds its checkpoint moved, reloads it and carries on from
   the rebuilt tables' position: whether the rebuild ended behind or ahead of the live tables,
   each event is applied to the tables in place exactly once. The retired tables are dropped.
Prepared statements elsewhere see the swap as a schema change and are re-planned against the
new tables (same names, same columns).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg

from engine.adapters.pg_pool import create_pool
from engine.log import LogCheckpoint

log = logging.getLogger("rezerv.projections.rebuild")

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class Runner(Protocol):
    async def run_once(self, limit: int | None = None) -> int: ...


@dataclass(frozen=True)
class ReadModel:
    """A rebuildable read model: its live checkpoint, its tables, and how to make its runner on
    a pool and under a checkpoint name."""

    name: str
    checkpoint: str
    tables: tuple[str, ...]
    runner: Callable[[asyncpg.Pool, str], Runner]

    @property
    def staging(self) -> str:
        return f"rebuild_{self.name}"

    @property
    def retired(self) -> str:
        return f"retired_{self.name}"

    @property
    def rebuild_checkpoint(self) -> str:
        return f"{self.checkpoint}:rebuild"


def read_models() -> dict[str, ReadModel]:
    from engine.adapters.pg_bookings import BookingsProjection
    from engine.adapters.pg_catalog import TABLES as CATALOG_TABLES
    from engine.adapters.pg_catalog import CatalogProjection
    from engine.projections.bookings import PROJECTION_NAME as BOOKINGS
    from engine.projections.catalog import PROJECTION_NAME as CATALOG

    return {
        "bookings": ReadModel(
            "bookings", BOOKINGS, ("bookings", "sales"), lambda pool, name: BookingsProjection(pool, name=name)
        ),
        "catalog": ReadModel("catalog", CATALOG, CATALOG_TABLES, lambda pool, name: CatalogProjection(pool, name=name)),
    }


@dataclass
class RebuildReport:
    model: str
    events: int = 0  # events the rebuild replayed
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    swap_ms: float = 0.0  # how long the swap held the tables
    swapped_at: LogCheckpoint | None = None


# ---- cloning tables --------------------------------------------------------------------------
def _ident(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a plain lower-case SQL name")
    return name


_INDEXES = """
SELECT pg_get_indexdef(x.indexrelid) AS definition, c.conname, pg_get_constraintdef(c.oid) AS constraint_definition
  FROM pg_index x
  LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x')
 WHERE x.indrelid = $1::regclass
 ORDER BY x.indexrelid
"""


async def clone_table(conn: asyncpg.Connection, source: str, target: str, table: str) -> None:
    """An empty `target.table` like `source.table`: columns, defaults, generated columns, checks,
    and every index and key under its own name."""
    src, dst, t = _ident(source), _ident(target), _ident(table)
    await conn.execute(f"CREATE TABLE {dst}.{t} (LIKE {src}.{t} INCLUDING ALL EXCLUDING INDEXES)")
    for r in await conn.fetch(_INDEXES, f"{src}.{t}"):
        if r["conname"] is not None:
            await conn.execute(f"ALTER TABLE {dst}.{t} ADD CONSTRAINT {r['conname']} {r['constraint_definition']}")
            continue
        definition, count = re.subn(rf" ON (ONLY )?({src}\.)?{t} USING ", f" ON {dst}.{t} USING ", r["definition"])
        if count != 1:
            raise RuntimeError(f"cannot re-target index definition {r['definition']!r}")
        await conn.execute(definition)


# ---- rebuilding ------------------------------------------------------------------------------
async def _drain(runner: Runner, batch: int) -> int:
    total = 0
    while handled := await runner.run_once(batch):
        total += handled
    return total


async def prepare(conn: asyncpg.Connection, model: ReadModel) -> str:
    """Fresh staging tables (a rebuild left half-done is discarded); returns the live schema."""
    live = str(await conn.fetchval("SELECT current_schema()"))
    await conn.execute(f"DROP SCHEMA IF EXISTS {_ident(model.staging)} CASCADE")
    await conn.execute(f"DROP SCHEMA IF EXISTS {_ident(model.retired)} CASCADE")
    await conn.execute("DELETE FROM log_checkpoints WHERE name = $1", model.rebuild_checkpoint)
    await conn.execute(f"CREATE SCHEMA {model.staging}")
    for table in model.tables:
        await clone_table(conn, live, model.staging, table)
    return live


async def swap(conn: asyncpg.Connection, model: ReadModel, live: str, lock_timeout_ms: int = 5000) -> LogCheckpoint:
    """Put the rebuilt tables in place of the live ones, with the rebuild's checkpoint (one
    transaction); returns that checkpoint. The retired tables are left in `model.retired`."""
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        # The live checkpoint row first: the order a projection batch locks things in.
        await conn.execute("SELECT 1 FROM log_checkpoints WHERE name = $1 FOR UPDATE", model.checkpoint)
        row = await conn.fetchrow(
            "SELECT txid, position FROM log_checkpoints WHERE name = $1 FOR UPDATE", model.rebuild_checkpoint
        )
        if row is None:
            raise RuntimeError(f"the rebuild of {model.name} has no checkpoint: it applied nothing")
        await conn.execute(f"CREATE SCHEMA {_ident(model.retired)}")
        for table in model.tables:
            await conn.execute(f"ALTER TABLE {_ident(live)}.{_ident(table)} SET SCHEMA {model.retired}")
            await conn.execute(f"ALTER TABLE {model.staging}.{_ident(table)} SET SCHEMA {live}")
        await conn.execute(
            """INSERT INTO log_checkpoints (name, txid, position) VALUES ($1, $2, $3)
               ON CONFLICT (name) DO UPDATE
                  SET txid = excluded.txid, position = excluded.position, updated_at = now()""",
            model.checkpoint,
            row["txid"],
            row["position"],
        )
        await conn.execute("DELETE FROM log_checkpoints WHERE name = $1", model.rebuild_checkpoint)
        return LogCheckpoint(int(row["txid"]), int(row["position"]))


async def rebuild(
    database_url: str,
    model: ReadModel,
    batch: int = 5000,
    progress: Callable[[str], None] = lambda _line: None,
    before_swap: Callable[[], object] | None = None,
    attempts: int = 5,
) -> RebuildReport:
    """Rebuild `model` from the log and swap it in (see the module docstring)."""
    started = time.monotonic()
    report = RebuildReport(model.name)
    conn = await asyncpg.connect(database_url)
    try:
        live = await prepare(conn, model)
        server_settings = {"search_path": f"{model.staging}, {live}"}
        pool = await create_pool(database_url, 2, server_settings=server_settings)
        try:
            runner = model.runner(pool, model.rebuild_checkpoint)
            progress(f"replaying the log into {model.staging} ...")
            report.events = await _drain(runner, batch)
            progress(f"replayed {report.events} events; swapping the tables in")
            if before_swap is not None:
                before_swap()
            for attempt in range(1, attempts + 1):
                report.events += await _drain(runner, batch)  # what arrived meanwhile
                t = time.monotonic()
                try:
                    report.swapped_at = await swap(conn, model, live)
                except asyncpg.LockNotAvailableError:
                    if attempt == attempts:
                        raise
                    progress(f"the tables are busy; trying the swap again ({attempt}/{attempts})")
                    await asyncio.sleep(0.5 * attempt)
                    continue
                report.swap_ms = (time.monotonic() - t) * 1000
                break
        finally:
            await pool.close()
        await conn.execute(f"DROP SCHEMA {_ident(model.retired)} CASCADE")
        await conn.execute(f"DROP SCHEMA {_ident(model.staging)}")
        for table in model.tables:
            report.rows[table] = int(await conn.fetchval(f"SELECT count(*) FROM {live}.{_ident(table)}"))
    finally:
        await conn.close()
    report.seconds = time.monotonic() - started
    return report


# ---- status ----------------------------------------------------------------------------------
@dataclass
class ModelStatus:
    model: str
    checkpoint: LogCheckpoint | None
    last_batch_at: str | None  # when the projection last moved its checkpoint (ISO 8601)
    behind_events: int
    behind_s: float  # age of the oldest event not applied yet (0 when caught up)
    rows: dict[str, int]
    rebuilding: bool  # a rebuild's staging tables exist (one is running, or one was interrupted)


_DELAY = """
SELECT extract(epoch FROM now() - recorded_at)::float8 FROM events
 WHERE (txid, position) > ($1::xid8, $2::bigint) AND txid < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY txid, position LIMIT 1
"""


async def behind_seconds(pool: asyncpg.Pool | asyncpg.Connection, checkpoint: LogCheckpoint) -> float:
    """How old the oldest event after `checkpoint` is: how far a reader there trails the log."""
    value = await pool.fetchval(_DELAY, checkpoint.txid, checkpoint.position)
    return max(0.0, float(value)) if value is not None else 0.0


async def catalog_lag(pool: asyncpg.Pool) -> tuple[int, float]:
    """(events the catalog has not applied, age in seconds of the oldest of them), for /metrics."""
    from engine.adapters.pg_log import PostgresLogReader
    from engine.projections.catalog import PROJECTION_NAME

    reader = PostgresLogReader(pool)
    checkpoint = await reader.load_checkpoint(PROJECTION_NAME)
    return await reader.lag(checkpoint), await behind_seconds(pool, checkpoint)


async def status(pool: asyncpg.Pool, models: dict[str, ReadModel] | None = None) -> list[ModelStatus]:
    from engine.adapters.pg_log import PostgresLogReader

    reader = PostgresLogReader(pool)
    out = []
    for model in (models or read_models()).values():
        row = await pool.fetchrow(
            "SELECT txid, position, updated_at FROM log_checkpoints WHERE name = $1", model.checkpoint
        )
        checkpoint = LogCheckpoint(int(row["txid"]), int(row["position"])) if row else None
        start = checkpoint or LogCheckpoint(0, 0)
        rows = {t: int(await pool.fetchval(f"SELECT count(*) FROM {_ident(t)}")) for t in model.tables}
        staging = await pool.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", model.staging)
        out.append(
            ModelStatus(
                model.name,
                checkpoint,
                row["updated_at"].isoformat() if row else None,
                await reader.lag(start),
                await behind_seconds(pool, start),
                rows,
                staging is not None,
            )
        )
    return out
