"""A PostgreSQL of a benchmark's own: `rezerv up`'s durable settings, migrated, in a temporary
directory that is removed with it. `rezerv bench append` and `rezerv bench snapshot` measure the
store against it, so that no other client shares its cores or its WAL."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from engine.adapters.pg_migrations import migrate_url
from stack.processes import free_port
from stack.servers import EmbeddedPostgres


def _new_root(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # PostgreSQL may run as another user (stack/servers.py)
    return root


@asynccontextmanager
async def durable_postgres(prefix: str) -> AsyncIterator[EmbeddedPostgres]:
    """A started and migrated PostgreSQL (fsync, synchronous_commit and full-page writes on);
    stopped and its directory removed on leaving."""
    root = await asyncio.to_thread(_new_root, prefix)
    try:
        pg = EmbeddedPostgres(root / "pg", free_port(), durable=True)
        await asyncio.to_thread(pg.start)
        try:
            await migrate_url(pg.url)
            yield pg
        finally:
            await asyncio.to_thread(pg.stop)
    finally:
        await asyncio.to_thread(shutil.rmtree, root, ignore_errors=True)
