"""Secrets of `rezerv up`: private from creation, never rewritten in place, never printed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.secrets import is_private, private_secret, write_private
from stack.up import redacted


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """Mode bits come from the code, not from a strict umask that would hide a mistake."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_secret_is_created_private_and_then_read_back(tmp_path: Path) -> None:
    path = tmp_path / "data" / "postgres_password"
    first = private_secret(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert private_secret(path) == first


def test_an_existing_secret_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "jwt_secret"
    path.write_text("kept-from-before\n")
    assert private_secret(path) == "kept-from-before"


def test_a_rewritten_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "valkey.conf"
    path.write_text("old\n")
    path.chmod(0o644)
    write_private(path, "requirepass x\n")
    assert path.read_text() == "requirepass x\n"
    assert is_private(path)
    assert [p.name for p in tmp_path.iterdir()] == ["valkey.conf"]  # no temporary file left behind


def test_printed_urls_hide_their_password() -> None:
    assert (
        redacted("postgresql://postgres:s3cret@127.0.0.1:5432/rezerv")
        == "postgresql://postgres:***@127.0.0.1:5432/rezerv"
    )
    assert redacted("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redacted("postgresql://postgres@127.0.0.1:5432/rezerv") == "postgresql://postgres@127.0.0.1:5432/rezerv"
    assert redacted("127.0.0.1:9092") == "127.0.0.1:9092"
