"""Session fixtures: real PostgreSQL, Valkey, Kafka-compatible broker and Ray, started lazily.

A test that needs none of them starts none of them. Unit tests (tests/unit) are barred from all
of them by tests/unit/conftest.py.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stack.servers import EmbeddedKafka, EmbeddedValkey
from tests.servers import (
    PostgresForTests,
    remove_tree,
    session_root,
    start_kafka,
    start_postgres,
    start_valkey,
)


@pytest.fixture(scope="session")
def stack_root() -> Iterator[Path]:
    root = session_root()
    yield root
    remove_tree(root)


@pytest.fixture(scope="session")
def pg_server(stack_root: Path) -> Iterator[PostgresForTests]:
    pg = start_postgres(stack_root)
    try:
        yield pg
    finally:
        pg.server.stop()


@pytest.fixture
async def database_url(pg_server: PostgresForTests) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    name = await pg_server.fresh_database()
    try:
        yield pg_server.url(name)
    finally:
        await pg_server.drop_database(name)


@pytest.fixture(scope="session")
def valkey_server(stack_root: Path) -> Iterator[EmbeddedValkey]:
    server = start_valkey(stack_root)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(valkey_server: EmbeddedValkey) -> str:
    return valkey_server.url


@pytest.fixture(scope="session")
def kafka_server(stack_root: Path) -> Iterator[EmbeddedKafka]:
    server = start_kafka(stack_root)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_server: EmbeddedKafka) -> str:
    return kafka_server.bootstrap


@pytest.fixture(scope="session")
def ray_cluster(stack_root: Path) -> Iterator[None]:
    """A local Ray started once for the session (about 5 s), stopped at the end. Its temp dir is
    inside the session's folder (short enough for Ray's socket paths), so no /tmp/ray outlives
    the run."""
    import logging

    import ray

    from stack.ray_auth import use_token

    use_token(stack_root / "ray_auth_token")  # never ~/.ray: see stack/ray_auth.py
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=False,
        _temp_dir=str(stack_root / "ray"),
    )
    try:
        yield
    finally:
        ray.shutdown()


_ORDER = {"unit": 0, "contract": 0, "integration": 1, "e2e": 2}


def _folder(item: pytest.Item) -> str:
    parts = item.path.parts
    return parts[parts.index("tests") + 1] if "tests" in parts else ""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Unit tests first (fast, and no session server or Ray exists yet), then integration, then e2e."""
    items.sort(key=lambda item: _ORDER.get(_folder(item), 1))  # stable: keeps file order within each folder


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the first e2e test, shut down the session's Ray (`ray_cluster`, which only the
    integration tests use): every e2e test starts `rezerv up` with a Ray head of its own, and two
    clusters on one machine share more than its two cores (Ray's fixed default ports, such as the
    dashboard agent's 52365, and the idle cluster's daemons and workers)."""
    if _folder(item) != "e2e" or "ray" not in sys.modules:
        return
    import ray

    if ray.is_initialized():
        ray.shutdown()
