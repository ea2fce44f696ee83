"""Which directories the user PostgreSQL runs as can reach, judged from permission bits."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.pg_placement import reachable

NOBODY = 65534


@pytest.fixture
def tree() -> Iterator[Path]:
    # Not pytest's tmp_path: that sits under a private directory.
    root = Path(tempfile.mkdtemp(prefix="rezerv-reach-"))
    base = root / "open"
    (base / "inner" / "deeper").mkdir(parents=True)
    for directory in (root, base, base / "inner", base / "inner" / "deeper"):
        directory.chmod(0o755)
    yield base
    shutil.rmtree(root, ignore_errors=True)


def test_a_world_searchable_path_is_reachable(tree: Path) -> None:
    if not reachable(tree.parent, NOBODY, NOBODY):
        pytest.skip("the temporary directory itself is private here")
    assert reachable(tree / "inner" / "deeper", NOBODY, NOBODY)


def test_one_private_directory_on_the_way_makes_everything_below_unreachable(tree: Path) -> None:
    if not reachable(tree.parent, NOBODY, NOBODY):
        pytest.skip("the temporary directory itself is private here")
    (tree / "inner").chmod(0o700)
    try:
        assert not reachable(tree / "inner" / "deeper", NOBODY, NOBODY)
        assert not reachable(tree / "inner", NOBODY, NOBODY)
        assert reachable(tree, NOBODY, NOBODY)
    finally:
        (tree / "inner").chmod(0o755)


def test_the_owner_of_a_private_directory_reaches_it(tree: Path) -> None:
    (tree / "inner").chmod(0o700)
    try:
        info = os.stat(tree / "inner")
        if not reachable(tree, info.st_uid, info.st_gid):
            pytest.skip("the temporary directory itself is private here")
        assert reachable(tree / "inner" / "deeper", info.st_uid, info.st_gid)
    finally:
        (tree / "inner").chmod(0o755)


def test_a_missing_path_is_not_reachable(tree: Path) -> None:
    assert not reachable(tree / "nowhere", NOBODY, NOBODY)
