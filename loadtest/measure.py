"""Measuring helpers for benchmarks: latency percentiles and CPU per process.

CPU is reported as percent of one core over the measured window, per role (driver, shards,
PostgreSQL, Valkey, Ray's own processes), because on a 2-core machine the figure that matters
is which process is the bottleneck, and whether the load generator itself is the limit.
"""

from __future__ import annotations

import contextlib
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
            self._before[pid] = cpu_seconds(proc)
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._t0
        used: dict[str, float] = {}
        for pid, (role, proc) in self._procs.items():
            used[role] = used.get(role, 0.0) + max(0.0, cpu_seconds(proc) - self._before[pid])
        return {role: round(100 * seconds / wall, 1) for role, seconds in sorted(used.items())}


def cpu_seconds(proc: psutil.Process) -> float:
    """The process's user + system CPU time so far; 0 once it is gone."""
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


# ---- CPU per role of whole process trees (the HTTP load tests) ---------------------------------
def process_role(proc: psutil.Process) -> str:
    """What a process of a rezerv or baseline stack is, by its name and command line."""
    name = proc.name()
    cmdline = " ".join(proc.cmdline()[:6])
    if name == "postgres" or name.startswith("postgres:"):
        return "postgres"
    if name.startswith("valkey"):
        return "valkey"
    if name == "tansu":
        return "kafka"
    if name == "prometheus":
        return "prometheus"
    if name.startswith("ray::ShardActor"):
        return "shards"
    if name.startswith("ray::ServiceActor"):
        return "saga services"
    if "locust" in cmdline or name == "wrk":
        return "load generator"
    if "loadtest.baselines" in cmdline:
        return "baseline api"
    if "uvicorn" in cmdline:
        return "api"
    if _is_ray(proc) or name.startswith("ray") or any(s in cmdline for s in ("bin/ray ", "ray.dashboard", "ray/")):
        return "ray internals"
    if "stack.cli" in cmdline:
        return "rezerv up"
    return "other"


def _busy_seconds() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


@dataclass
class TreeCpuSampler:
    """CPU of every process below `roots` (by `process_role`), of `singles` (role -> pids, the
    process alone), and of the whole machine, between `start()` and `stop()`, in percent of one
    core. "outside this run" is the machine's busy time not spent in any of them: other work on a
    shared machine, visible next to every figure."""

    roots: list[int] = field(default_factory=list)
    singles: dict[str, list[int]] = field(default_factory=dict)
    _procs: dict[int, tuple[str, psutil.Process]] = field(default_factory=dict)
    _before: dict[int, float] = field(default_factory=dict)
    _busy0: float = 0.0
    _t0: float = 0.0
    per_process: dict[str, list[float]] = field(default_factory=dict)  # role -> each process's share

    def _collect(self) -> None:
        for role, pids in self.singles.items():
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    self._procs.setdefault(pid, (role, psutil.Process(pid)))
        for root in self.roots:
            for proc in _tree(root):
                if proc.pid not in self._procs:
                    with contextlib.suppress(psutil.Error):
                        self._procs[proc.pid] = (process_role(proc), proc)

    def start(self) -> None:
        self._procs.clear()
        self._collect()
        self._before = {pid: cpu_seconds(proc) for pid, (_, proc) in self._procs.items()}
        self._busy0 = _busy_seconds()
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._t0
        busy = _busy_seconds() - self._busy0
        used: dict[str, float] = {}
        self.per_process = {}
        for pid, (role, proc) in self._procs.items():
            seconds = max(0.0, cpu_seconds(proc) - self._before.get(pid, 0.0))
            used[role] = used.get(role, 0.0) + seconds
            self.per_process.setdefault(role, []).append(round(100 * seconds / wall, 1))
        out = {role: round(100 * seconds / wall, 1) for role, seconds in sorted(used.items())}
        out["outside this run"] = round(max(0.0, 100 * (busy - sum(used.values())) / wall), 1)
        out["machine total"] = round(100 * busy / wall, 1)
        return out
