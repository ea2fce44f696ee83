"""The soak test: the flash sale for half an hour, and the resident memory of every process.

    python -m loadtest.soak                      # 6 steps of 64 users x 300 s, the flash sale
    python -m loadtest.soak --steps 2 --window 60 --users 16   # a short rehearsal

It runs `rezerv loadtest run` (which starts `rezerv up`, funds 1,000 customers, tops the hot
tier up before every step and audits at the end) and, beside it, samples the resident memory
(RSS) and unique memory (USS: what the process alone holds, without the pages it shares) of
every process below it every `--every` seconds, by role and pid. It writes under the
run's folder `memory.csv` (one row per sample and process), `memory.png` (RSS against time, one
line per process) and `memory.json` (the verdict), and exits 1 when the load test fails or the
verdict does.

The verdict (`memory_verdict`, pure): after the warm-up (the first `--warmup` seconds), every
process must stay flat (its USS at the end at most `--growth-mib` above its lowest USS after
warm-up, so a process that grew and then settled passes, and one that keeps growing does not)
and its RSS under `--bound-mib`. Flatness is judged on USS because RSS counts shared pages:
each PostgreSQL backend's RSS grows as it touches more of the shared buffers (256 MB), which is
a cache filling, not a leak. The defaults are this stack's on a 2-core machine: BENCHMARKS.md.

Not part of `make test`: it takes half an hour by design.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from loadtest.measure import process_role
from stack.arguments import COUNT, SECONDS, SECONDS_ABOVE_0, number

MIB = 1024 * 1024
# The measuring harness, not the system: `rezerv loadtest run` itself (it keeps every answer for
# the audit, which then reads the whole log) and Locust. Sampled and plotted, never judged.
HARNESS = frozenset({"loadtest driver", "load generator"})


@dataclass(frozen=True)
class Sample:
    at_s: float  # seconds since the run began
    pid: int
    role: str
    rss_mib: float
    uss_mib: float


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    role: str
    peak_mib: float  # the highest RSS
    settled_low_mib: float  # the lowest USS after warm-up
    end_mib: float  # the last USS
    growth_mib: float  # end - settled_low
    flat: bool
    under_bound: bool


def memory_verdict(
    samples: Iterable[Sample], warmup_s: float, growth_mib: float, bound_mib: float
) -> list[ProcessMemory]:
    """Each process seen after the warm-up: flat (its USS ends at most `growth_mib` above its
    lowest point after warm-up) and its RSS under `bound_mib` at its peak. Processes seen only during the
    warm-up (setup helpers, Locust workers that came and went) and the HARNESS are not judged."""
    by_pid: dict[int, list[Sample]] = {}
    for s in samples:
        by_pid.setdefault(s.pid, []).append(s)
    out = []
    for pid, series in sorted(by_pid.items()):
        series.sort(key=lambda s: s.at_s)
        settled = [s for s in series if s.at_s >= warmup_s]
        if not settled or series[-1].role in HARNESS:
            continue
        low = min(s.uss_mib for s in settled)
        peak = max(s.rss_mib for s in series)
        end = settled[-1].uss_mib
        out.append(
            ProcessMemory(
                pid,
                series[-1].role,
                round(peak, 1),
                round(low, 1),
                round(end, 1),
                round(end - low, 1),
                end - low <= growth_mib,
                peak <= bound_mib,
            )
        )
    return out


def sample_tree(root: int, started: float) -> list[Sample]:
    """The RSS and USS of `root` and every process below it, now."""
    try:
        procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.Error:
        return []
    at = time.monotonic() - started
    out = []
    for proc in procs:
        try:
            memory = proc.memory_full_info()
            role = "loadtest driver" if proc.pid == root else process_role(proc)
            out.append(Sample(round(at, 1), proc.pid, role, memory.rss / MIB, memory.uss / MIB))
        except psutil.Error:
            continue
    return out


def write_csv(path: Path, samples: Sequence[Sample]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seconds", "pid", "role", "rss_mib", "uss_mib"])
        for s in samples:
            writer.writerow([s.at_s, s.pid, s.role, round(s.rss_mib, 1), round(s.uss_mib, 1)])


def plot(path: Path, samples: Sequence[Sample], judged: Sequence[ProcessMemory], warmup_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keep = {p.pid for p in judged}
    fig, ax = plt.subplots(figsize=(13, 6))
    by_pid: dict[int, list[Sample]] = {}
    for s in samples:
        if s.pid in keep:
            by_pid.setdefault(s.pid, []).append(s)
    # PostgreSQL's many backends share one thin grey style and one legend entry, so the legend
    # names the processes a reader looks for.
    postgres = sorted(pid for pid, series in by_pid.items() if series[-1].role == "postgres")
    for pid, series in sorted(by_pid.items(), key=lambda kv: -max(s.uss_mib for s in kv[1])):
        minutes, uss = [s.at_s / 60 for s in series], [s.uss_mib for s in series]
        if pid in postgres:
            label = f"postgres ({len(postgres)} processes)" if pid == postgres[0] else None
            ax.plot(minutes, uss, color="grey", linewidth=0.6, alpha=0.6, label=label)
        else:
            ax.plot(minutes, uss, label=f"{series[-1].role} ({pid})")
    ax.axvline(warmup_s / 60, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("minutes")
    ax.set_ylabel("unique resident memory (USS), MiB")
    ax.set_title("rezerv soak: the flash sale, memory of every process")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


MIB_ABOVE_0 = number(float, "a number of MiB above 0", 0.0, above=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=COUNT, default=64)
    parser.add_argument("--steps", type=COUNT, default=6, help="steps of --window seconds (the tier is topped up each)")
    parser.add_argument("--window", type=COUNT, default=300, help="seconds per step")
    parser.add_argument("--every", type=SECONDS_ABOVE_0, default=10.0, help="seconds between memory samples")
    parser.add_argument("--warmup", type=SECONDS, default=300.0, help="seconds not judged for flatness")
    parser.add_argument("--growth-mib", type=MIB_ABOVE_0, default=64.0, help="most a process may grow after warm-up")
    parser.add_argument("--bound-mib", type=MIB_ABOVE_0, default=1024.0, help="most any process may hold")
    parser.add_argument("--results", default="loadtest/results")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    users = ",".join([str(args.users)] * args.steps)
    command = [
        sys.executable,
        "-m",
        "stack.cli",
        "loadtest",
        "run",
        "--users",
        users,
        "--window",
        str(args.window),
        "--results",
        args.results,
    ]
    started = time.monotonic()
    before = set(Path(args.results).glob("*")) if Path(args.results).exists() else set()
    run = subprocess.Popen(command)
    samples: list[Sample] = []
    while run.poll() is None:
        samples += sample_tree(run.pid, started)
        time.sleep(args.every)
    made = sorted(set(Path(args.results).glob("*")) - before)
    out_dir = made[-1] if made else Path(args.results)
    judged = memory_verdict(samples, args.warmup, args.growth_mib, args.bound_mib)
    write_csv(out_dir / "memory.csv", samples)
    plot(out_dir / "memory.png", samples, judged, args.warmup)
    ok = run.returncode == 0 and all(p.flat and p.under_bound for p in judged)
    verdict = {
        "command": " ".join(["python -m loadtest.soak", *(argv or sys.argv[1:])]),
        "load_test_exit": run.returncode,
        "warmup_s": args.warmup,
        "growth_mib": args.growth_mib,
        "bound_mib": args.bound_mib,
        "passed": ok,
        "processes": [p.__dict__ for p in judged],
    }
    (out_dir / "memory.json").write_text(json.dumps(verdict, indent=2))
    for p in judged:
        mark = "ok" if p.flat and p.under_bound else "FAIL"
        print(
            f"  {p.role:16} {p.pid:>7}  RSS peak {p.peak_mib:7.1f} MiB  USS after warm-up {p.settled_low_mib:7.1f}"
            f" -> {p.end_mib:7.1f} MiB ({p.growth_mib:+.1f})  {mark}"
        )
    print(f"memory {'flat and bounded' if ok else 'NOT flat or over the bound'}; {out_dir}/memory.png")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
