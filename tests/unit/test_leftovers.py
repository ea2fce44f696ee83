"""What a killed `rezerv up` left running is found from what it wrote down, and stopped."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from engine.config import Settings
from stack.leftovers import note, start_afresh, stop_left_running, written_down
from stack.processes import ManagedProcess, on_every_start
from stack.up import RunFiles, run_down

# A process that starts a child of its own and then sleeps, as a server with workers does.
PARENT_AND_CHILD = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
)


def start() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", PARENT_AND_CHILD], start_new_session=True)


def family(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    parent = psutil.Process(proc.pid)
    for _ in range(100):
        if parent.children():
            break
        time.sleep(0.05)
    return [parent, *parent.children()]


def running(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            for member in family(proc):
                member.kill()
        proc.wait()


def test_what_was_written_down_is_stopped_with_everything_below_it_and_nothing_else(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    written = tmp_path / "processes"
    start_afresh(written)
    ours, other = start(), start()
    processes += [ours, other]
    note(written, ours.pid)
    our_family, other_family = family(ours), family(other)
    assert {p.pid for p in written_down(written)} == {p.pid for p in our_family}
    assert stop_left_running(written, timeout_s=5) == 2
    assert running(our_family) == []
    assert running(other_family) == other_family


def test_a_pid_written_down_that_now_belongs_to_another_process_is_left_alone(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    other = start()
    processes.append(other)
    created = psutil.Process(other.pid).create_time()
    (tmp_path / "processes").write_text(f"{other.pid} {created - 5}\n")  # started 5 s earlier: not this one
    assert stop_left_running(tmp_path / "processes") == 0
    assert other.poll() is None


def test_nothing_written_down_or_nothing_still_running_stops_nothing(tmp_path: Path) -> None:
    assert stop_left_running(tmp_path / "never-written") == 0
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "processes").write_text(f"{gone.pid} 0.0\nnot a line\n")
    assert stop_left_running(tmp_path / "processes") == 0


def test_every_managed_process_started_is_told_to_the_listeners_until_removed(tmp_path: Path) -> None:
    told: list[int] = []
    forget = on_every_start(told.append)
    first = ManagedProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "a.log")
    second = ManagedProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "b.log")
    try:
        first.start()
        forget()
        second.start()
        assert told == [first.pid]
    finally:
        first.stop()
        second.stop()


def test_down_without_a_running_up_stops_what_a_killed_one_left(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    files = RunFiles(tmp_path)
    start_afresh(files.processes_file)
    left = start()
    processes.append(left)
    note(files.processes_file, left.pid)
    members = family(left)
    assert run_down(Settings(data_dir=tmp_path)) == 0
    assert "stopped 2 processes a killed one had left running" in capsys.readouterr().out
    assert running(members) == []
