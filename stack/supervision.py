"""When `rezerv up` restarts a server that died, and when it gives up: pure, no processes.

A server that dies is restarted after a delay that doubles with each recent failure (0.5 s, 1 s,
2 s, ... up to 10 s), so a server that cannot stay up does not spin. Failures older than the
window (REZERV_RESTART_WINDOW_S) are forgotten; the failure that makes more than
REZERV_RESTART_LIMIT of them within the window is answered with "give up", and `rezerv up` then
stops the whole stack with a message naming the server and its log (stack/up.py).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Restart:
    delay_s: float
    attempt: int  # 1 for the first restart within the window


@dataclass(frozen=True)
class GiveUp:
    failures: int  # within the window, this one included


@dataclass
class RestartPolicy:
    limit: int
    window_s: float
    first_delay_s: float = 0.5
    max_delay_s: float = 10.0
    _failures: deque[float] = field(default_factory=deque)

    def failed(self, now: float) -> Restart | GiveUp:
        """Record a failure at `now` (monotonic seconds) and say what to do about it."""
        while self._failures and self._failures[0] <= now - self.window_s:
            self._failures.popleft()
        self._failures.append(now)
        count = len(self._failures)
        if count > self.limit:
            return GiveUp(count)
        return Restart(min(self.first_delay_s * 2 ** (count - 1), self.max_delay_s), count)


@dataclass
class StepTimer:
    """How long each step of a restart took, said in one line ("head started 4.7 s, ..."): a
    restart that is slow names its slow step in the output instead of leaving it to a guess."""

    clock: Callable[[], float] = time.monotonic
    steps: list[tuple[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._last = self.clock()

    def done(self, step: str) -> None:
        now = self.clock()
        self.steps.append((step, now - self._last))
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.steps)
