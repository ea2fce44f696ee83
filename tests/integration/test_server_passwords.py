"""The embedded servers with passwords, as `rezerv up` runs them: PostgreSQL refuses a connection
without the password (also a cluster made before passwords, which is switched over), Valkey
refuses commands before AUTH, and no password shows on a command line or in a readable file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from stack.processes import free_port
from stack.secrets import is_private, new_password
from stack.servers import EmbeddedPostgres, EmbeddedValkey
from tests.servers import postgres_lets_in, remove_tree, session_root, valkey_answers

pytestmark = pytest.mark.slow


@pytest.fixture
def root() -> Iterator[Path]:
    path = session_root()
    yield path
    remove_tree(path)


def command_lines(pid: int) -> str:
    """Every command line of the process tree; a child that exits meanwhile is skipped."""
    proc = psutil.Process(pid)
    lines = []
    for p in [proc, *proc.children(recursive=True)]:
        try:
            lines.append(" ".join(p.cmdline()))
        except psutil.NoSuchProcess:
            continue
    return " ".join(lines)


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
        assert postgres_lets_in(server.url)
        assert not postgres_lets_in(without)
        assert not postgres_lets_in(wrong)
        assert (server.cluster_dir or server.data_dir).joinpath("pg_hba.conf").read_text().count("trust") == 0
    finally:
        server.stop()


def test_a_new_postgres_cluster_is_made_with_the_password(root: Path) -> None:
    password = new_password()
    server = EmbeddedPostgres(data_dir=root / "pg", port=free_port(), durable=False, password=password)
    server.start()
    try:
        assert postgres_lets_in(server.url)
        assert not postgres_lets_in(f"postgresql://postgres@127.0.0.1:{server.port}/rezerv")
    finally:
        server.stop()


def test_valkey_refuses_commands_before_auth_and_keeps_its_password_in_a_private_file(root: Path) -> None:
    password = new_password()
    server = EmbeddedValkey(data_dir=root / "valkey", port=free_port(), durable=False, password=password)
    server.start()

    try:
        assert server.process is not None
        assert server.process.pid is not None
        assert password not in command_lines(server.process.pid)
        assert is_private(server.config_path)
        assert valkey_answers(server.url)
        assert not valkey_answers(f"redis://127.0.0.1:{server.port}/0")
    finally:
        server.stop()
