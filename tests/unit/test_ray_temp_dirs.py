"""Ray's temp dir kept short in /tmp is removed with its data dir, or swept once that is gone; what
multiprocessing left in it is swept at the next start."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.servers import (
    RAY_OWNER_FILE,
    claim_ray_temp_dir,
    ray_temp_dir,
    remove_data_dir,
    sweep_multiprocessing_dirs,
    sweep_orphaned_ray_temp_dirs,
)


@pytest.fixture
def long_data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir whose path is too long for Ray's sockets, so its Ray temp dir lies in /tmp."""
    data_dir = tmp_path / "a-data-directory-with-a-long-enough-name"
    data_dir.mkdir()
    temp_dir = ray_temp_dir(data_dir)
    assert not temp_dir.is_relative_to(data_dir)
    temp_dir.mkdir()
    yield data_dir
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_ray_temp_dir_outside_its_data_dir_names_the_data_dir(long_data_dir: Path) -> None:
    claim_ray_temp_dir(long_data_dir)
    assert (ray_temp_dir(long_data_dir) / RAY_OWNER_FILE).read_text() == str(long_data_dir.resolve())


def test_a_ray_temp_dir_inside_its_data_dir_is_not_named() -> None:
    data_dir = Path("/tmp/rz-short")
    assert ray_temp_dir(data_dir) == data_dir / "ray"
    claim_ray_temp_dir(data_dir)  # nothing to write: it goes with the data dir
    assert not data_dir.exists()


def test_the_sweep_keeps_a_temp_dir_while_its_data_dir_exists_and_removes_it_after(long_data_dir: Path) -> None:
    claim_ray_temp_dir(long_data_dir)
    temp_dir = ray_temp_dir(long_data_dir)
    assert temp_dir not in sweep_orphaned_ray_temp_dirs()
    assert temp_dir.exists()
    shutil.rmtree(long_data_dir)
    assert temp_dir in sweep_orphaned_ray_temp_dirs()
    assert not temp_dir.exists()


def test_the_sweep_leaves_a_temp_dir_that_names_no_data_dir_and_other_users_dirs(tmp_path: Path) -> None:
    unnamed = tmp_path / f"rezerv-ray-{os.getuid()}-0000000000"
    someone_elses = tmp_path / f"rezerv-ray-{os.getuid() + 1}-0000000000"
    for temp_dir in (unnamed, someone_elses):
        temp_dir.mkdir()
    (someone_elses / RAY_OWNER_FILE).write_text(str(tmp_path / "gone"))
    assert sweep_orphaned_ray_temp_dirs(tmp_path) == []
    assert unnamed.exists()
    assert someone_elses.exists()


def test_removing_a_data_dir_removes_its_ray_temp_dir_in_tmp(long_data_dir: Path) -> None:
    (long_data_dir / "logs").mkdir()
    remove_data_dir(long_data_dir)
    assert not long_data_dir.exists()
    assert not ray_temp_dir(long_data_dir).exists()


def test_the_multiprocessing_dirs_a_stopped_head_left_are_swept_and_nothing_else(tmp_path: Path) -> None:
    left = tmp_path / "pymp-k2j3h4g5"
    left.mkdir()
    (left / "listener-abc").write_bytes(b"")
    session = tmp_path / "session_latest" / "logs"
    session.mkdir(parents=True)
    assert sweep_multiprocessing_dirs(tmp_path) == [left]
    assert not left.exists()
    assert session.is_dir()
