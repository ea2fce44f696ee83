"""Rebuilding read models from the log (engine/adapters/pg_rebuild.py) on the real PostgreSQL: the
rebuilt tables equal the live ones, keep their indexes and keys, the live projection carries on
from them, and the API keeps answering while the tables are swapped."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg

from engine.adapters.pg_bookings import BookingsProjection
from engine.adapters.pg_catalog import CatalogProjection, read_catalog
from engine.adapters.pg_log import PostgresLogReader
from engine.adapters.pg_rebuild import clone_table, read_models, rebuild, status
from engine.adapters.pg_sales import PostgresSales
from engine.adapters.redis_client import create_redis
from engine.adapters.redis_page_cache import RedisPageCache, catalog_prefix
from engine.log import START
from engine.projections.catalog import EVENTS
from engine.sales import EntitySales, sales_of
from tests.integration.catalog_stack import CatalogStack, stack
from tests.integration.test_bookings_projection import a_story
from tests.integration.test_bookings_projection import reference as bookings_reference
from tests.integration.test_bookings_projection import table as bookings_table
from tests.integration.test_catalog_projection import append_log, reference
from tests.integration.test_catalog_routes import seed
from tests.unit.test_catalog_projection import a_history, recorded_before_upgrade

__all__ = ["stack"]

STORY = (
    [
        ("hold", "e1", "h1", "std", 2),
        ("hold", "e2", "h2", "vip", 1),
        ("car", "c1", "h3", 3, 4),
        ("confirm", 0),
        ("block", "c2", "b1", 5, 3),
        ("hold2", "e1", "h4", 2),
        ("wait", 70_000),
        ("expire", 2),
        ("release", 1),
        ("capacity", "e2", "std", 4),
        ("car", "c2", "h5", 20, 2),
        ("unblock", "c2", "b1"),
        ("cancel", 0),
    ],
    "e2",
)


async def index_names(pool: asyncpg.Pool, tables: tuple[str, ...]) -> set[tuple[str, str, str]]:
    rows = await pool.fetch(
        """SELECT t.relname AS t, i.relname AS i, pg_get_indexdef(i.oid) AS d FROM pg_index x
             JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
            WHERE t.relname = ANY($1::text[]) AND t.relnamespace = 'public'::regnamespace""",
        list(tables),
    )
    return {(r["t"], r["i"], r["d"]) for r in rows}


async def constraints(pool: asyncpg.Pool, tables: tuple[str, ...]) -> set[tuple[str, str, str]]:
    rows = await pool.fetch(
        """SELECT t.relname AS t, c.conname AS n, pg_get_constraintdef(c.oid) AS d FROM pg_constraint c
             JOIN pg_class t ON t.oid = c.conrelid
            WHERE t.relname = ANY($1::text[]) AND t.relnamespace = 'public'::regnamespace""",
        list(tables),
    )
    return {(r["t"], r["n"], r["d"]) for r in rows}


async def test_a_rebuilt_catalog_equals_the_live_one_and_keeps_its_indexes(pool: asyncpg.Pool, database_url: str):
    events = a_history(STORY).events  # its first half as recorded before hold ends carried their tiers
    await append_log(pool, recorded_before_upgrade(events, len(events) // 2))
    await CatalogProjection(pool).catch_up()
    live = await read_catalog(pool)
    assert all((live.events, live.cars, live.intervals, live.holds)), "the story leaves rows in every table"
    model = read_models()["catalog"]
    indexes, keys = await index_names(pool, model.tables), await constraints(pool, model.tables)

    report = await rebuild(database_url, model, batch=7)

    assert await read_catalog(pool) == live == await reference(pool)
    assert await index_names(pool, model.tables) == indexes
    assert await constraints(pool, model.tables) == keys
    assert report.rows == {t: int(await pool.fetchval(f"SELECT count(*) FROM {t}")) for t in model.tables}
    assert report.events == len(a_history(STORY).events)
    assert (
        await pool.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname IN ('rebuild_catalog', 'retired_catalog')")
        == 0
    )
    checkpoint = await PostgresLogReader(pool).load_checkpoint(model.checkpoint)
    assert checkpoint == (await PostgresLogReader(pool).read_after(START, 1000))[-1].checkpoint
    assert await PostgresLogReader(pool).load_checkpoint(model.rebuild_checkpoint) == START


async def _sales(pool: asyncpg.Pool) -> dict[str, EntitySales]:
    return {s.entity: s for s in await PostgresSales(pool).top(100)}


async def test_a_rebuilt_bookings_table_equals_the_live_one(pool: asyncpg.Pool, database_url: str) -> None:
    await a_story(pool)
    live_runner = BookingsProjection(pool)
    while await live_runner.run_once():
        pass
    live = await bookings_table(pool)
    assert len(live) == 4
    await pool.execute("UPDATE sales SET revenue = 0")  # the rebuilt counters replace these wrong ones
    model = read_models()["bookings"]
    indexes, keys = await index_names(pool, model.tables), await constraints(pool, model.tables)

    await rebuild(database_url, model, batch=3)

    assert await bookings_table(pool) == live == await bookings_reference(pool)
    assert await _sales(pool) == sales_of(live.values())
    assert await index_names(pool, model.tables) == indexes
    assert await constraints(pool, model.tables) == keys
    # The live runner carries on from the rebuilt table.
    from tests.integration.test_bookings_projection import tickets, write

    await write(pool, "event/e3", tickets("h-new", "e3", customer="dave"))
    while await live_runner.run_once():
        pass
    assert await bookings_table(pool) == await bookings_reference(pool)
    assert "h-new" in await bookings_table(pool)
    assert await _sales(pool) == sales_of((await bookings_table(pool)).values())


async def test_the_live_projection_goes_on_whether_the_rebuild_ends_behind_or_ahead(
    pool: asyncpg.Pool, database_url: str
):
    """Events logged between the rebuild's catch-up and the swap: the live tables had them, the
    rebuilt ones not yet; after the swap the live runner applies them to the rebuilt tables."""
    history = a_history(STORY)
    first, rest = history.events[:20], history.events[20:]
    await append_log(pool, first)
    live_runner = CatalogProjection(pool)
    await live_runner.catch_up()
    model = read_models()["catalog"]

    pending: list[asyncio.Task[None]] = []

    def more_events_arrive() -> None:
        pending.append(asyncio.get_running_loop().create_task(append_and_apply()))

    async def append_and_apply() -> None:
        await append_log(pool, rest)
        await live_runner.catch_up()

    report = await rebuild(database_url, model, before_swap=more_events_arrive)
    await asyncio.gather(*pending)
    await live_runner.catch_up()
    assert await read_catalog(pool) == await reference(pool)
    assert report.swapped_at is not None


async def test_the_api_keeps_answering_while_the_catalog_is_rebuilt(stack: CatalogStack, database_url: str) -> None:
    await seed(stack)
    stop = asyncio.Event()
    live = asyncio.get_running_loop().create_task(stack.projection.run(stop))
    answers: list[tuple[int, list[str]]] = []

    async def browse() -> None:
        while not stop.is_set():
            reply = await stack.get("/admin/events?limit=100", stack.admin)  # never cached
            items = [i["event_id"] for i in reply.json().get("items", [])] if reply.status == 200 else []
            answers.append((reply.status, items))
            await asyncio.sleep(0.005)

    async def buy() -> None:
        for i in range(20):
            await stack.post(
                "/events/lights/holds", {"quantities": {"std": 1}}, stack.as_(f"c{i}"), **{"Idempotency-Key": f"k{i}"}
            )
            await asyncio.sleep(0.01)

    browser = asyncio.get_running_loop().create_task(browse())
    try:
        await asyncio.gather(rebuild(database_url, read_models()["catalog"], batch=5), buy())
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(live, browser)
    await stack.settle()
    assert len(answers) > 10
    assert {status for status, _ in answers} == {200}
    assert all(sorted(items) == sorted(answers[0][1]) for _, items in answers), "every answer lists every event"
    assert await read_catalog(stack.pool) == await reference(stack.pool)
    lights = (await stack.get("/events?q=nordic")).json()["items"][0]
    assert lights["tiers"][0]["held"] == 20


async def test_status_reports_each_model_and_how_far_behind_it_is(pool: asyncpg.Pool) -> None:
    await append_log(pool, a_history(STORY).events)
    before = {s.model: s for s in await status(pool)}
    assert before["catalog"].checkpoint is None
    assert before["catalog"].behind_events == len(a_history(STORY).events)
    assert before["catalog"].behind_s > 0
    await CatalogProjection(pool).catch_up()
    after = {s.model: s for s in await status(pool)}
    assert (after["catalog"].behind_events, after["catalog"].behind_s) == (0, 0.0)
    assert after["catalog"].rows["catalog_events"] == 2
    assert after["catalog"].rebuilding is False
    assert after["bookings"].behind_events == len(a_history(STORY).events)


async def test_a_cloned_table_has_the_same_shape(pool: asyncpg.Pool) -> None:
    await pool.execute("CREATE SCHEMA copy")
    async with pool.acquire() as conn:
        for t in ("bookings", "catalog_events"):
            await clone_table(conn, "public", "copy", t)
    shape = """SELECT column_name, data_type, is_nullable, column_default, is_generated, generation_expression
                 FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2
                ORDER BY ordinal_position"""
    for t in ("bookings", "catalog_events"):
        assert [tuple(r) for r in await pool.fetch(shape, "copy", t)] == [
            tuple(r) for r in await pool.fetch(shape, "public", t)
        ]


def rezerv(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REZERV_")}
    return subprocess.run(
        [sys.executable, "-m", "stack.cli", *args], env={**base, **env}, capture_output=True, text=True, timeout=120
    )


async def test_the_commands_rebuild_the_catalog_and_report_status(
    pool: asyncpg.Pool, database_url: str, redis_url: str
) -> None:
    await append_log(pool, a_history(STORY).events)
    await CatalogProjection(pool).catch_up()
    live = await read_catalog(pool)
    redis = create_redis(redis_url)
    cache = RedisPageCache(redis, catalog_prefix("cli-test"))
    generation, _ = await cache.lookup(EVENTS, "any")
    env = {"REZERV_DATABASE_URL": database_url, "REZERV_REDIS_URL": redis_url, "REZERV_NAMESPACE": "cli-test"}

    done = await asyncio.to_thread(rezerv, "projections", "rebuild", "catalog", **env)
    assert done.returncode == 0, done.stderr
    assert "rebuilt catalog" in done.stdout
    assert await read_catalog(pool) == live
    assert (await cache.lookup(EVENTS, "any"))[0] == generation + 1, "cached pages of the old tables are dropped"
    await redis.aclose()

    shown = await asyncio.to_thread(rezerv, "projections", "status", **env)
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()[1:]}
    assert set(lines) == {"bookings", "catalog"}
    assert lines["catalog"].split()[1] == "0", "the rebuilt catalog is caught up"
    assert "catalog_events=2" in lines["catalog"]

    unknown = await asyncio.to_thread(rezerv, "projections", "rebuild", "wallets", **env)
    assert unknown.returncode == 2
    assert "bookings, catalog" in unknown.stderr
