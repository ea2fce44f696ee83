"""Versioned SQL migrations, applied in order at start-up.

Files are ``engine/migrations/NNNN_name.sql``. Each is applied in its own transaction and
recorded in ``schema_migrations`` with a checksum, so running twice changes nothing and an
edited, already-applied file is reported instead of silently skipped. A session advisory lock
makes two processes starting at once take turns: the second finds everything applied.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

# An arbitrary constant, the same in every rezerv process: "rezerv migrations".
MIGRATION_LOCK_KEY = 0x7265_7A65_7276


class MigrationError(RuntimeError):
    """The database's recorded migrations disagree with the files shipped with this version."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def load_migrations(directory: Path | None = None) -> list[Migration]:
    if directory is None:
        root = resources.files("engine") / "migrations"
        entries = [(entry.name, entry.read_text()) for entry in root.iterdir() if entry.name.endswith(".sql")]
    else:
        entries = [(p.name, p.read_text()) for p in directory.glob("*.sql")]
    migrations = []
    for name, sql in entries:
        match = _NAME.match(name)
        if not match:
            raise MigrationError(f"migration file {name!r} is not named NNNN_lower_snake.sql")
        migrations.append(Migration(int(match.group(1)), match.group(2), sql))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return migrations


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply pending migrations; returns the versions applied by this call."""
    migrations = load_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer     PRIMARY KEY,
                   name       text        NOT NULL,
                   checksum   text        NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {r["version"]: r for r in rows}
        known = {m.version for m in migrations}
        unknown = sorted(set(applied) - known)
        if unknown:
            raise MigrationError(
                f"the database has migrations {unknown} that this rezerv version does not ship; "
                "it was created by a newer version"
            )
        done: list[int] = []
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after it was "
                        "applied; add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def migrate_url(database_url: str) -> list[int]:
    conn = await asyncpg.connect(database_url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
