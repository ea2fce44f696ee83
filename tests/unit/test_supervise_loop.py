"""`rezerv up`'s supervision loop: liveness every period, descendants on a slower clock."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.config import Settings
from stack.processes import ManagedProcess
from stack.supervision import RestartPolicy
from stack.up import Stack, Supervised


class CountingProcess(ManagedProcess):
    records = 0

    def record_descendants(self) -> None:
        self.records += 1
        super().record_descendants()


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
