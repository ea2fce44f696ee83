"""The pid file names `rezerv up` by pid and start time: a pid reused since by another process is
neither signalled by `rezerv down` nor taken for a running `rezerv up`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from engine.config import Settings
from stack.up import RunFiles, pid_file_line, run_down, running_pid


@pytest.fixture
def files(tmp_path: Path) -> RunFiles:
    files = RunFiles(tmp_path)
    files.run_dir.mkdir(parents=True)
    return files


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """Some other process, alive; its last two arguments make it look like `rezerv up` to `ps`."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "stack.cli", "up"])
    yield proc
    proc.kill()
    proc.wait()


def test_the_process_that_wrote_the_pid_file_is_the_running_up(files: RunFiles) -> None:
    files.pid_file.write_text(pid_file_line())
    assert running_pid(files) == os.getpid()


def test_a_pid_now_used_by_a_process_that_started_later_is_not_the_running_up(files: RunFiles) -> None:
    started = psutil.Process().create_time()
    files.pid_file.write_text(f"{os.getpid()} {started - 60}\n")  # that `rezerv up` started a minute earlier
    assert running_pid(files) is None


def test_a_pid_file_without_a_start_time_counts_only_for_a_process_that_is_a_rezerv_up(
    files: RunFiles, sleeper: subprocess.Popen[bytes]
) -> None:
    files.pid_file.write_text(f"{os.getpid()}\n")  # pytest: not a `rezerv up`
    assert running_pid(files) is None
    files.pid_file.write_text(f"{sleeper.pid}\n")
    assert running_pid(files) == sleeper.pid


def test_down_never_signals_a_process_that_reused_the_pid(
    files: RunFiles, sleeper: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    started = psutil.Process(sleeper.pid).create_time()
    files.pid_file.write_text(f"{sleeper.pid} {started - 60}\n")
    assert run_down(Settings(data_dir=files.data_dir), timeout_s=2) == 0
    assert "no `rezerv up` is running" in capsys.readouterr().out
    assert sleeper.poll() is None, "the other process was left alone"
