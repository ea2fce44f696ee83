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


def _started_cluster(data_dir: Path, password: str) -> pg_placement.PlacedCluster:
    """What a start as root leaves behind: a placed cluster, linked, that knows `password`."""
    placed = pg_placement.reachable_cluster(data_dir / "pg", NOBODY, NOBODY, password)
    (placed.path / "PG_VERSION").write_text("18")
    pg_placement.remember_owner(placed.path, data_dir, password)
    return placed


@pytest.fixture
def private_data_dir(roots: tuple[Path, Path], tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    if pg_placement.reachable(data_dir, NOBODY, NOBODY):
        pytest.skip("the temporary directory is reachable by nobody here: nothing would be placed")
    return data_dir


def test_a_data_directory_that_lost_only_its_link_is_linked_to_its_cluster_again(private_data_dir: Path) -> None:
    first = _started_cluster(private_data_dir, "the-secret")
    (first.path / "base-data").write_text("bookings")
    (private_data_dir / "pg").unlink()  # e.g. restored by a copy that skips symbolic links

    again = pg_placement.reachable_cluster(private_data_dir / "pg", NOBODY, NOBODY, "the-secret")

    assert again == pg_placement.PlacedCluster(first.path, set_aside=None, relinked=True)
    assert (private_data_dir / "pg").resolve() == first.path
    assert (first.path / "base-data").read_text() == "bookings"
    assert not [p for p in first.path.parent.iterdir() if pg_placement.ORPHANED in p.name]


def test_a_data_directory_made_again_with_another_password_sets_the_old_cluster_aside(private_data_dir: Path) -> None:
    first = _started_cluster(private_data_dir, "the-first-secret")
    (first.path / "base-data").write_text("bookings")
    (private_data_dir / "pg").unlink()

    again = pg_placement.reachable_cluster(private_data_dir / "pg", NOBODY, NOBODY, "a-new-secret")

    assert again.path == first.path
    assert not again.relinked
    assert again.set_aside is not None
    assert (again.set_aside / "base-data").read_text() == "bookings"
    assert not (again.path / "PG_VERSION").exists(), "a new, empty cluster directory"


def test_a_placed_cluster_that_never_recorded_its_password_is_set_aside_as_before(private_data_dir: Path) -> None:
    first = _started_cluster(private_data_dir, "the-secret")
    (first.path / pg_placement.PASSWORD_DIGEST).unlink()  # made by a version that did not record it
    (private_data_dir / "pg").unlink()

    again = pg_placement.reachable_cluster(private_data_dir / "pg", NOBODY, NOBODY, "the-secret")

    assert again.set_aside is not None
    assert not again.relinked


def test_the_recorded_password_is_a_digest_readable_only_by_its_owner(private_data_dir: Path) -> None:
    placed = _started_cluster(private_data_dir, "the-secret")
    marker = placed.path / pg_placement.PASSWORD_DIGEST
    assert "the-secret" not in marker.read_text()
    assert marker.stat().st_mode & 0o777 == 0o600
    assert pg_placement.password_digest("the-secret") != pg_placement.password_digest("the-secreT")


def test_rezerv_clusters_lists_each_placed_cluster_with_what_it_is_and_removes_only_those_set_aside(
    private_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stack.cli import main

    in_use = _started_cluster(private_data_dir, "the-first-secret")
    (in_use.path / "base-data").write_bytes(b"x" * 2**20)
    (private_data_dir / "pg").unlink()  # `rm -rf .rezerv`, made again: the next start sets the old one aside
    now_in_use = _started_cluster(private_data_dir, "a-new-secret")
    assert now_in_use.set_aside is not None
    other_data_dir = private_data_dir.parent / "gone"
    other_data_dir.mkdir(mode=0o700)
    gone = _started_cluster(other_data_dir, "its-secret")
    shutil.rmtree(other_data_dir)  # removed, never started again

    assert main(["clusters"]) == 0
    listed = capsys.readouterr().out
    assert f"{now_in_use.path}  in use by {private_data_dir.resolve()}" in listed
    assert f"{now_in_use.set_aside}  set aside " in listed
    assert f"{gone.path}  its data directory {other_data_dir.resolve()} is gone" in listed
    assert "1 set aside (1.0 MB): `rezerv clusters --remove-set-aside` deletes them" in listed

    assert main(["clusters", "--remove-set-aside"]) == 0
    assert "removed 1 set-aside clusters, 1.0 MB" in capsys.readouterr().out
    assert not now_in_use.set_aside.exists()
    assert (now_in_use.path / "PG_VERSION").exists()
    assert (gone.path / "PG_VERSION").exists(), "a cluster not set aside is only listed, never removed"


def test_rezerv_clusters_with_nothing_placed_says_so(
    roots: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from stack.cli import main

    assert main(["clusters"]) == 0
    assert capsys.readouterr().out.startswith("no placed clusters")
    assert not any(root.exists() for root in roots), "looking creates nothing"


def test_a_set_aside_cluster_that_a_server_runs_on_is_kept(private_data_dir: Path) -> None:
    _started_cluster(private_data_dir, "the-first-secret")
    (private_data_dir / "pg").unlink()
    aside = _started_cluster(private_data_dir, "a-new-secret").set_aside
    assert aside is not None
    (aside / "postmaster.pid").write_text(f"{os.getpid()}\n")  # a live process, as a server started by hand

    assert pg_placement.remove_set_aside(pg_placement.placed_clusters()) == []
    assert (aside / "PG_VERSION").exists()

    (aside / "postmaster.pid").unlink()  # the server stopped
    assert [c.path for c in pg_placement.remove_set_aside(pg_placement.placed_clusters())] == [aside]
