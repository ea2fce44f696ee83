"""`rezerv up`'s supervision loop: liveness every period, descendants on a slower clock."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import pytest

from engine.config import Settings
from stack import up
from stack.processes import ManagedProcess, ProcessTable, process_table
from stack.supervision import RestartPolicy
from stack.up import Stack, Supervised


class CountingProcess(ManagedProcess):
    records = 0

    def record_descendants(self, table: ProcessTable | None = None) -> None:
        self.records += 1
        super().record_descendants(table)


def test_descendants_are_recorded_on_their_own_slower_clock_while_liveness_is_checked_every_period(
    tmp_path: Path,
) -> None:
    child = CountingProcess(name="sleeper", argv=[sys.executable, "-c", "import time; time.sleep(30)"],
                            log_path=tmp_path / "sleeper.log")  # fmt: skip
    child.start()
    try:
        stack = Stack(Settings(data_dir=tmp_path), out=lambda _: None)
        stack.supervised.append(Supervised("sleeper", lambda: child, lambda: None, RestartPolicy(3, 60)))
        checks = 0

        def stop_after_ten_periods() -> bool:
            nonlocal checks
            checks += 1
            return checks >= 10

        assert stack.supervise(stop_after_ten_periods, period_s=0.01, record_every_s=0.05) == 0
        assert 1 <= child.records <= 4, "about every fifth period, never every one"
        assert child.alive()
    finally:
        child.stop()


# A child that starts a grandchild sleeping as long as itself, and prints the grandchild's pid.
PARENT = (
    "import subprocess, sys, time; "
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
    "print(g.pid, flush=True); time.sleep(30)"
)


def printed(child: ManagedProcess) -> bool:
    return child.log_path.read_text().strip() != ""


def itself(child: ManagedProcess) -> ManagedProcess:
    return child


def test_one_walk_of_the_process_table_records_the_grandchildren_of_every_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    walks = 0

    def counted() -> ProcessTable:
        nonlocal walks
        walks += 1
        return process_table()

    monkeypatch.setattr(up, "process_table", counted)
    children = [
        ManagedProcess(name=f"parent{i}", argv=[sys.executable, "-c", PARENT], log_path=tmp_path / f"p{i}.log")
        for i in range(3)
    ]
    for child in children:
        child.start()
    try:
        for child in children:
            child.wait_ready(partial(printed, child), timeout_s=20)
        stack = Stack(Settings(data_dir=tmp_path), out=lambda _: None)
        for child in children:
            stack.supervised.append(Supervised(child.name, partial(itself, child), lambda: None, RestartPolicy(3, 60)))
        assert stack.supervise(lambda: True, period_s=0.01, record_every_s=60) == 0
        assert walks == 1, "one table for the three children, not one walk each"
        for child in children:
            grandchild = int(child.log_path.read_text().split()[0])
            assert grandchild in child._descendants
    finally:
        for child in children:
            child.stop()
