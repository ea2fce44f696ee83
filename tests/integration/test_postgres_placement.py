"""As root, PostgreSQL runs as `nobody`; binaries and a cluster in private directories are placed
where `nobody` reaches them, and the server starts (stack/pg_placement.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from stack import pg_placement
from stack.processes import free_port, unprivileged_ids
from stack.servers import EmbeddedPostgres, postgres_install_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")


@pytest.fixture
def private_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="rezerv-private-"))  # mode 700, owned by root
    yield root
    shutil.rmtree(root, ignore_errors=True)


def private_copy_of_the_install(private_dir: Path) -> Path:
    """The wheel's layout (package dir with pginstall/, beside the package's .libs dir) inside a 700 directory."""
    source = postgres_install_dir().resolve()
    package = source.parent
    shutil.copytree(source, private_dir / "site" / package.name / source.name, symlinks=True)
    libs = package.with_name(package.name + ".libs")
    if libs.is_dir():
        shutil.copytree(libs, private_dir / "site" / libs.name, symlinks=True)
    return private_dir / "site" / package.name / source.name


async def server_version(port: int) -> str:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="rezerv")
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def test_postgres_starts_from_binaries_and_a_data_directory_that_nobody_cannot_reach(private_dir: Path) -> None:
    uid, gid = unprivileged_ids()
    assert uid is not None
    assert gid is not None
    install = private_copy_of_the_install(private_dir)
    data_dir = private_dir / "data"
    assert not pg_placement.reachable(install, uid, gid)
    server = EmbeddedPostgres(data_dir=data_dir / "pg", port=free_port(), durable=False, install_dir=install)
    placed_install = None
    try:
        server.start()
        assert asyncio.run(server_version(server.port)).startswith("18")
        placed_install = pg_placement.reachable_install(install, uid, gid)
        assert placed_install != install
        assert pg_placement.reachable(placed_install / "bin", uid, gid)
        assert server.cluster_dir == pg_placement.cluster_home(data_dir)
        assert (data_dir / "pg").is_symlink()
        assert (data_dir / "pg").resolve() == server.cluster_dir
        server.stop()

        # A second start finds the cluster through the link and keeps its data.
        again = EmbeddedPostgres(data_dir=data_dir / "pg", port=free_port(), durable=False, install_dir=install)
        again.start()
        try:
            assert again.cluster_dir == server.cluster_dir
            assert asyncio.run(server_version(again.port)).startswith("18")
        finally:
            again.stop()
    finally:
        server.stop()
        shutil.rmtree(pg_placement.cluster_home(data_dir), ignore_errors=True)
        if placed_install is not None:
            shutil.rmtree(placed_install.parent.parent, ignore_errors=True)


async def tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        return {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    finally:
        await conn.close()


async def create_table(url: str, name: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE TABLE {name} (id int)")
    finally:
        await conn.close()


def test_a_data_directory_removed_and_made_again_gets_a_new_cluster_and_the_old_one_is_set_aside(
    private_dir: Path,
) -> None:
    """`rm -rf .rezerv` to start over: the placed cluster outlives the link and the password it
    knows. Used again, the next start would fail to log in; it gets a cluster of its own instead."""
    data_dir = private_dir / "data"
    first = EmbeddedPostgres(data_dir=data_dir / "pg", port=free_port(), durable=False, password="the-first-secret")
    again = EmbeddedPostgres(data_dir=data_dir / "pg", port=free_port(), durable=False, password="a-new-secret")
    try:
        first.start()
        assert first.set_aside is None
        asyncio.run(create_table(first.url, "old_data"))
        first.stop()
        shutil.rmtree(data_dir)  # the data directory, with the link and the password file in it

        again.start()
        assert again.cluster_dir == pg_placement.cluster_home(data_dir)
        assert asyncio.run(tables(again.url)) == set(), "a new, empty cluster"
        assert again.set_aside is not None
        assert again.set_aside.parent == pg_placement.cluster_home(data_dir).parent
        assert (again.set_aside / "PG_VERSION").exists(), "the old cluster is kept, not deleted"
        states = {c.path: c.state for c in pg_placement.placed_clusters()}
        assert states[again.cluster_dir] == f"in use by {data_dir.resolve()}"
        assert states[again.set_aside].startswith("set aside ")
    finally:
        first.stop()
        again.stop()
        shutil.rmtree(pg_placement.cluster_home(data_dir), ignore_errors=True)
        if again.set_aside is not None:
            shutil.rmtree(again.set_aside, ignore_errors=True)


def test_a_data_directory_that_lost_only_its_link_starts_on_its_own_cluster_again(private_dir: Path) -> None:
    """A data directory restored by a copy that skips symbolic links (or its `pg` link removed by
    hand) still has the password its cluster knows: the start links it again, and its data is there."""
    data_dir = private_dir / "data"
    first = EmbeddedPostgres(data_dir=data_dir / "pg", port=free_port(), durable=False, password="the-secret")
    again = EmbeddedPostgres(data_dir=data_dir / "pg", port=free_port(), durable=False, password="the-secret")
    try:
        first.start()
        asyncio.run(create_table(first.url, "bookings_kept"))
        first.stop()
        (data_dir / "pg").unlink()

        again.start()
        assert again.relinked
        assert again.set_aside is None
        assert again.cluster_dir == pg_placement.cluster_home(data_dir)
        assert asyncio.run(tables(again.url)) == {"bookings_kept"}, "the same cluster, with its data"
        assert (data_dir / "pg").resolve() == again.cluster_dir
    finally:
        first.stop()
        again.stop()
        shutil.rmtree(pg_placement.cluster_home(data_dir), ignore_errors=True)
