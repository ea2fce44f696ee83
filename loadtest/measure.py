"""Measuring helpers for benchmarks: latency percentiles and CPU per process.

CPU is reported as percent of one core over the measured window, per role (driver, shards,
PostgreSQL, Valkey, Ray's own processes), because on a 2-core machine the figure that matters
is which process is the bottleneck (../shared/MEASURING.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_s)
    return {
        "p50_ms": percentile(ordered, 50) * 1000,
        "p99_ms": percentile(ordered, 99) * 1000,
        "max_ms": (ordered[-1] if ordered else 0.0) * 1000,
    }


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


@dataclass
class CpuSampler:
    """CPU seconds per role between `start()` and `stop()`, as percent of one core."""

    roles: dict[str, list[int]] = field(default_factory=dict)  # role -> root pids (whole trees)
    _before: dict[int, float] = field(default_factory=dict)
    _procs: dict[int, tuple[str, psutil.Process]] = field(default_factory=dict)
    _t0: float = 0.0

    def start(self) -> None:
        self._procs.clear()
        self._before.clear()
        claimed: set[int] = set()
        for role, pids in self.roles.items():
            for pid in pids:
                for proc in _tree(pid) if role != "driver" else [psutil.Process(pid)]:
                    if proc.pid in claimed:
                        continue
                    claimed.add(proc.pid)
                    self._procs[proc.pid] = (role, proc)
        for proc in psutil.process_iter():  # everything else Ray runs (raylet, gcs, dashboard, ...)
            try:
                if proc.pid not in claimed and _is_ray(proc):
                    self._procs[proc.pid] = ("ray internals", proc)
            except psutil.Error:
                continue
        for pid, (_, proc) in self._procs.items():
            self._before[pid] = _cpu(proc)
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._t0
        used: dict[str, float] = {}
        for pid, (role, proc) in self._procs.items():
            used[role] = used.get(role, 0.0) + max(0.0, _cpu(proc) - self._before[pid])
        return {role: round(100 * seconds / wall, 1) for role, seconds in sorted(used.items())}


def _cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return 0.0


def _is_ray(proc: psutil.Process) -> bool:
    name = proc.name()
    if name in {"raylet", "gcs_server"} or name.startswith("ray::"):
        return True
    cmdline = " ".join(proc.cmdline()[:3])
    return "ray/" in cmdline or "ray." in cmdline


def machine_description() -> str:
    mem = psutil.virtual_memory().total / 2**30
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} vCPU ({model or 'unknown CPU'}), {mem:.0f} GiB RAM, Linux {os.uname().release}"


def pids_of(predicate_names: Iterable[str]) -> list[int]:
    names = set(predicate_names)
    out = []
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.info["name"] in names:
            out.append(proc.info["pid"])
    return out
