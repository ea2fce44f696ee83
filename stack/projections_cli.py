"""`rezerv projections status` and `rezerv projections rebuild NAME`: the read models of the log.

They talk to PostgreSQL directly (REZERV_DATABASE_URL, or the embedded server of a `rezerv up`
running on REZERV_DATA_DIR), never to the running services: a rebuild swaps its tables in while
the API and the live projection go on (engine/adapters/pg_rebuild.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from engine.config import Settings
from stack.arguments import COUNT


def database_url(settings: Settings) -> str | None:
    """The configured database, or the embedded one of a `rezerv up` running on the data directory."""
    if settings.database_url:
        return settings.database_url
    from stack.up import RunFiles, running_pid

    if running_pid(RunFiles(settings.data_dir)) is None:
        return None
    return f"postgresql://postgres@127.0.0.1:{settings.postgres_port}/rezerv"


def redis_url(settings: Settings) -> str | None:
    if settings.redis_url:
        return settings.redis_url
    from stack.up import RunFiles, running_pid

    return f"redis://127.0.0.1:{settings.redis_port}/0" if running_pid(RunFiles(settings.data_dir)) else None


def main(action: str, name: str | None, batch: int, settings: Settings | None = None) -> int:
    settings = settings or Settings.from_env()
    url = database_url(settings)
    if url is None:
        print(
            "rezerv projections: set REZERV_DATABASE_URL, or start `rezerv up` (same REZERV_DATA_DIR)",
            file=sys.stderr,
        )
        return 2
    if action == "status":
        return asyncio.run(_status(url))
    from engine.adapters.pg_rebuild import read_models

    models = read_models()
    if name not in models:
        print(f"rezerv projections rebuild: unknown read model {name!r}; one of {', '.join(models)}", file=sys.stderr)
        return 2
    return asyncio.run(_rebuild(url, models[name], batch, settings))


async def _status(url: str) -> int:
    from engine.adapters.pg_pool import create_pool
    from engine.adapters.pg_rebuild import status

    pool = await create_pool(url, 2)
    try:
        rows = await status(pool)
    finally:
        await pool.close()
    print(f"{'model':10} {'behind (events)':>16} {'behind (s)':>11}  {'last batch':32} rows")
    for s in rows:
        tables = ", ".join(f"{t}={n}" for t, n in s.rows.items())
        note = "  (staging tables of a rebuild exist)" if s.rebuilding else ""
        last = s.last_batch_at or "never"
        print(f"{s.model:10} {s.behind_events:>16} {s.behind_s:>11.2f}  {last:32} {tables}{note}")
    return 0


async def _rebuild(url: str, model: object, batch: int, settings: Settings) -> int:
    from engine.adapters.pg_rebuild import ReadModel, rebuild

    assert isinstance(model, ReadModel)
    report = await rebuild(url, model, batch, progress=lambda line: print(f"  {line}", flush=True))
    if model.name == "catalog":
        await _invalidate_catalog_pages(settings)
    rows = ", ".join(f"{t}={n}" for t, n in report.rows.items())
    print(
        f"rebuilt {model.name}: {report.events} events replayed in {report.seconds:.1f} s, "
        f"tables swapped in {report.swap_ms:.0f} ms; {rows}"
    )
    return 0


async def _invalidate_catalog_pages(settings: Settings) -> None:
    """Rebuilt rows may differ from the old ones (that is why one rebuilds): no cached page of
    the old tables is served again."""
    url = redis_url(settings)
    if not url:
        return
    from engine.adapters.redis_client import create_redis
    from engine.adapters.redis_page_cache import RedisPageCache, catalog_prefix
    from engine.projections.catalog import CARS, EVENTS

    redis = create_redis(url, max_connections=2)
    try:
        await RedisPageCache(redis, catalog_prefix(settings.namespace)).invalidate([EVENTS, CARS])
    except Exception as exc:
        print(f"  could not invalidate cached catalog pages ({exc!r}); they expire within their TTL")
    finally:
        await redis.aclose()


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    projections = sub.add_parser("projections", help="read models built from the log: status, rebuild")
    actions = projections.add_subparsers(dest="action", required=True)
    actions.add_parser("status", help="each read model's checkpoint, how far it trails the log, its rows")
    rebuild = actions.add_parser(
        "rebuild", help="rebuild a read model from the log into new tables and swap them in (the API keeps serving)"
    )
    rebuild.add_argument("name", help="bookings or catalog")
    rebuild.add_argument("--batch", type=COUNT, default=5000, help="events per transaction while replaying")


def run(args: argparse.Namespace) -> int:
    return main(args.action, getattr(args, "name", None), getattr(args, "batch", 5000))
