"""Which directories the user PostgreSQL runs as can reach, judged from permission bits; where a
data dir's placed cluster is found, without creating anything."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import pg_placement
from stack.pg_placement import reachable
from stack.servers import remove_data_dir

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


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The two placement roots moved under `tmp_path` (neither exists yet)."""
    system, temp = tmp_path / "var-lib-rezerv", tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(pg_placement, "SYSTEM_ROOT", system)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return system, temp / "rezerv-root"


def test_looking_for_a_placed_cluster_creates_no_placement_root(roots: tuple[Path, Path], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    assert pg_placement.placed_cluster_of(data_dir) is None
    remove_data_dir(data_dir)
    assert not data_dir.exists()
    assert not any(root.exists() for root in roots)


def test_removing_a_data_dir_removes_the_cluster_placed_for_it(roots: tuple[Path, Path], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    home = pg_placement.cluster_home(data_dir)  # as a start as root makes it
    home.mkdir(parents=True)
    (home / "PG_VERSION").write_text("18")
    assert pg_placement.placed_cluster_of(data_dir) == home
    remove_data_dir(data_dir)
    assert not home.exists()
    assert not data_dir.exists()


def test_a_placement_root_owned_by_another_user_is_not_looked_into(roots: tuple[Path, Path], tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a directory to another user")
    system_root, _temp_root = roots
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    home = pg_placement.cluster_home(data_dir)
    home.mkdir(parents=True)
    assert pg_placement.placed_cluster_of(data_dir) == home
    os.chown(system_root, NOBODY, NOBODY)
    assert pg_placement.placed_cluster_of(data_dir) is None
