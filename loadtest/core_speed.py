"""How fast the cores ran during a measured window: one fixed piece of pure-Python work, timed in
its own thread's CPU time, once a second.

Why: on the shared virtual machines these benchmarks run on, the same code's throughput moved by
up to 2.3x within an hour, and a ratio between two systems measured minutes apart moves with it
(BENCHMARKS.md, section 3). CPU time leaves out the time spent waiting for a core, so this times
how fast a core executes the same instructions while it runs them: the host's clock, its other
tenants, a busy sibling hyper-thread, none of which any process of the run controls. A step whose
fixed work took 10 ms ran on slower cores than one where it took 7 ms; a comparison between them
says as much about the machine as about the systems.

The cores do not drift slowly: they switch between two speeds (about 2.0 and 3.3 ms of this work
on the machine of BENCHMARKS.md), often within a step. So a step is summarised by the
mean of its samples, which carries the share of the window spent on each speed, and that is what
the comparison holds two steps to. The median alone hid it: in run 56 two steps of rezerv with
medians of 2.31 and 2.03 ms confirmed 734 and 1,197 bookings a second, the first with a tenth of
its samples at 3.55 ms or more (its 90th percentile; BENCHMARKS.md, part "2026-12-04, 14:16").

It costs about a quarter of a percent of a core, in the load-test driver, the same for every system.
"""

from __future__ import annotations

import threading
import time
from statistics import fmean, median, quantiles
from typing import TypedDict

WORK = 50_000  # iterations: about 1.5-3 ms of CPU on the 2-core machine of BENCHMARKS.md


class CoreSpeed(TypedDict):
    mean_ms: float
    median_ms: float
    p10_ms: float
    p90_ms: float
    samples: int


def fixed_work(iterations: int = WORK) -> int:
    """The timed work: integer arithmetic in a loop, no allocation that outlives it, no I/O."""
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def summarise(samples_ms: list[float]) -> CoreSpeed | None:
    """The samples' mean, median and 10th/90th percentiles (None without samples)."""
    if not samples_ms:
        return None
    if len(samples_ms) == 1:
        low = high = samples_ms[0]
    else:
        cuts = quantiles(samples_ms, n=10, method="inclusive")
        low, high = cuts[0], cuts[-1]
    return CoreSpeed(
        mean_ms=round(fmean(samples_ms), 2),
        median_ms=round(median(samples_ms), 2),
        p10_ms=round(low, 2),
        p90_ms=round(high, 2),
        samples=len(samples_ms),
    )


def typical_ms(speed: CoreSpeed | dict[str, float]) -> float:
    """What a step's fixed work took, for comparing steps: its mean, or its median in a summary
    written before the mean was kept (results of 2026-12-04 and earlier)."""
    return float(speed.get("mean_ms", speed["median_ms"]))


class CoreSpeedProbe:
    """Times `fixed_work` every `every_s` in a daemon thread between `start()` and `stop()`."""

    def __init__(self, every_s: float = 1.0, iterations: int = WORK) -> None:
        self.every_s = every_s
        self.iterations = iterations
        self.samples_ms: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="core-speed probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.thread_time()
            fixed_work(self.iterations)
            self.samples_ms.append((time.thread_time() - began) * 1000)
            self._stop.wait(self.every_s)

    def stop(self) -> CoreSpeed | None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return summarise(self.samples_ms)
