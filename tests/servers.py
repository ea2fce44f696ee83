"""Real servers for the test session: started once on free ports in a temporary directory.

The same classes as `rezerv up` (stack/servers.py), with durability off. Each server is stopped
by its own process id at the end of the session, even when tests fail (pytest finalizers), and
a leftover check in the session teardown reports any process that outlived it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from engine.adapters.pg_migrations import migrate
from stack.processes import free_port
from stack.servers import EmbeddedKafka, EmbeddedPostgres, EmbeddedValkey, sweep_orphaned_ray_temp_dirs

TEMPLATE_DB = "rezerv_template"


def session_root() -> Path:
    # Not pytest's tmp_path: that sits under a 0700 root-owned directory PostgreSQL (as `nobody`)
    # cannot traverse.
    root = Path(tempfile.mkdtemp(prefix="rezerv-test-"))
    root.chmod(0o755)
    return root


def remove_tree(root: Path) -> None:
    """Remove a test's folder, and the Ray temp dirs in /tmp of data dirs that were inside it."""
    shutil.rmtree(root, ignore_errors=True)
    sweep_orphaned_ray_temp_dirs()


@dataclass
class PostgresForTests:
    server: EmbeddedPostgres

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def create_template(self) -> None:
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        finally:
            await conn.close()
        conn = await asyncpg.connect(self.url(TEMPLATE_DB))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def fresh_database(self) -> str:
        """A new, migrated database cloned from the template (about 30 ms)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
        finally:
            await conn.close()
        return name

    async def drop_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()


def start_postgres(root: Path) -> PostgresForTests:
    server = EmbeddedPostgres(data_dir=root / "pg", port=free_port(), durable=False)
    server.start()
    pg = PostgresForTests(server)
    asyncio.run(pg.create_template())
    return pg


def start_valkey(root: Path) -> EmbeddedValkey:
    server = EmbeddedValkey(data_dir=root / "valkey", port=free_port(), durable=False)
    server.start()
    return server


def start_kafka(root: Path) -> EmbeddedKafka:
    server = EmbeddedKafka(log_dir=root / "logs", port=free_port())
    server.start()
    return server


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def postgres_lets_in(url: str) -> bool:
    """True if PostgreSQL accepts a connection to `url`, False if it refuses its credentials."""

    async def attempt() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
            return False
        await conn.close()
        return True

    return asyncio.run(attempt())


def valkey_answers(url: str) -> bool:
    """True if Valkey answers PING at `url`, False if it wants (other) credentials first."""
    import redis.asyncio as aioredis
    from redis.exceptions import AuthenticationError, ResponseError

    async def attempt() -> bool:
        client = aioredis.Redis.from_url(url)
        try:
            return bool(await client.ping())
        except (AuthenticationError, ResponseError):
            return False
        finally:
            await client.aclose()

    return asyncio.run(attempt())
