"""The embedded servers with passwords, as `rezerv up` runs them: PostgreSQL refuses a connection
without the password (also a cluster made before passwords, which is switched over), Valkey
refuses commands before AUTH, and no password shows on a command line or in a readable file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, ResponseError

from stack.processes import free_port
from stack.secrets import is_private, new_password
from stack.servers import EmbeddedPostgres, EmbeddedValkey
from tests.servers import remove_tree, session_root

pytestmark = pytest.mark.slow


@pytest.fixture
def root() -> Iterator[Path]:
    path = session_root()
    yield path
    remove_tree(path)


def command_lines(pid: int) -> str:
    proc = psutil.Process(pid)
    return " ".join(" ".join(p.cmdline()) for p in [proc, *proc.children(recursive=True)])


async def connects(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
        return False
    await conn.close()
    return True


def test_postgres_needs_the_password_also_for_a_cluster_made_without_one(root: Path) -> None:
    port = free_port()
    old = EmbeddedPostgres(data_dir=root / "pg", port=port, durable=False)  # trust, as before passwords
    old.start()
    old.stop()
    password = new_password()
    server = EmbeddedPostgres(data_dir=root / "pg", port=port, durable=False, password=password)
    server.start()
    try:
        assert server.process is not None
        assert server.process.pid is not None
        assert password not in command_lines(server.process.pid)
        without = f"postgresql://postgres@127.0.0.1:{port}/rezerv"
        wrong = f"postgresql://postgres:{new_password()}@127.0.0.1:{port}/rezerv"
        assert asyncio.run(connects(server.url))
        assert not asyncio.run(connects(without))
        assert not asyncio.run(connects(wrong))
        assert (server.cluster_dir or server.data_dir).joinpath("pg_hba.conf").read_text().count("trust") == 0
    finally:
        server.stop()


def test_a_new_postgres_cluster_is_made_with_the_password(root: Path) -> None:
    password = new_password()
    server = EmbeddedPostgres(data_dir=root / "pg", port=free_port(), durable=False, password=password)
    server.start()
    try:
        assert asyncio.run(connects(server.url))
        assert not asyncio.run(connects(f"postgresql://postgres@127.0.0.1:{server.port}/rezerv"))
    finally:
        server.stop()


def test_valkey_refuses_commands_before_auth_and_keeps_its_password_in_a_private_file(root: Path) -> None:
    password = new_password()
    server = EmbeddedValkey(data_dir=root / "valkey", port=free_port(), durable=False, password=password)
    server.start()

    async def ping(url: str) -> bool:
        client = aioredis.Redis.from_url(url)
        try:
            return bool(await client.ping())
        except (AuthenticationError, ResponseError):
            return False
        finally:
            await client.aclose()

    try:
        assert server.process is not None
        assert server.process.pid is not None
        assert password not in command_lines(server.process.pid)
        assert is_private(server.config_path)
        assert asyncio.run(ping(server.url))
        assert not asyncio.run(ping(f"redis://127.0.0.1:{server.port}/0"))
    finally:
        server.stop()
