"""The load generator's own ceiling: the flash sale's Locust users against an API that does nothing.

    python -m loadtest.generator_ceiling [--users 16,64,256] [--window 30] [--results DIR]

Why: every figure of `rezerv loadtest` is timed by Locust on the same two cores as the system it
measures, and in a closed loop a user's next hold waits for its last answer. How many bookings a
second Locust itself can drive at a step, and what hold p99 it reports when the server costs next
to nothing, bounds what any system can show on this machine: a target above that bound is not a
target for the system. This runs the very scenario `rezerv loadtest run` runs (the same Locust
command line, population file and records) against `NullApi`, a server on uvloop and httptools that
(loadtest/null_api.py) answers a hold with a 201 and a read with a 200 without storing anything, and prints per step the
bookings a second, the hold's p50 and p99, and the CPU Locust and the server took per booking.

Nothing here is a product path; the server checks nothing and keeps nothing. The audit, the drain
and the store's counts of `rezerv loadtest` do not apply: the bookings a second are the 201s Locust
counted in the window.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.core_speed import CoreSpeedProbe
from loadtest.http_run import HOLD_ROUTES, READ_ROUTE, RunOptions, locust_argv
from loadtest.locust_results import read_routes
from loadtest.measure import TreeCpuSampler, machine_description
from loadtest.population import HOT_TIER, Customer, Population
from loadtest.scenarios.paths import WINDOW_FILE

HOLD_ROUTE = HOLD_ROUTES[0]  # the flash sale holds seats of an event
SERVER_ROLE = "null api"
GENERATOR_ROLE = "load generator"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def population(base_url: str, customers: int) -> Population:
    """Customers with made-up tokens (the null API checks none) and one event with the hot tier."""
    people = [Customer(f"null-customer-{i}", f"token-{i}") for i in range(customers)]
    return Population("flash-sale", base_url, "null", "", people, [{"event_id": "null-event", "tiers": [HOT_TIER]}])


@dataclass(frozen=True)
class _UrlOnly:
    base_url: str


@dataclass
class StepFigures:
    users: int
    bookings_per_s: float
    hold_p50_ms: float
    hold_p99_ms: float
    read_p99_ms: float
    generator_cpu: float  # percent of one core
    server_cpu: float
    machine_cpu: float
    fixed_work_ms: float | None

    def per_booking_us(self, cpu_percent: float) -> float:
        return 10_000 * cpu_percent / self.bookings_per_s if self.bookings_per_s else 0.0

    def row(self) -> str:
        work = f"{self.fixed_work_ms:.2f}" if self.fixed_work_ms is not None else "-"
        return (
            f"| {self.users:,} | {self.bookings_per_s:,.0f} | {self.hold_p50_ms:.0f} / {self.hold_p99_ms:.0f} "
            f"| {self.read_p99_ms:.0f} | {self.generator_cpu:.0f}% ({self.per_booking_us(self.generator_cpu):.0f}) "
            f"| {self.server_cpu:.0f}% ({self.per_booking_us(self.server_cpu):.0f}) "
            f"| {self.machine_cpu:.0f}% | {work} |"
        )


HEADER = (
    "| users | bookings/s | hold p50 / p99 ms | read p99 ms | Locust, % of a core (us per booking) "
    "| null API, % (us) | machine | fixed work ms |\n|---|---|---|---|---|---|---|---|"
)


def step_figures(users: int, step_dir: Path, window_s: float, cpu: dict[str, float], work: Any) -> StepFigures:
    routes = read_routes(step_dir)
    hold = routes.get(HOLD_ROUTE)
    read = routes.get(READ_ROUTE)
    created = int(hold.statuses.get("201", 0)) if hold else 0
    return StepFigures(
        users,
        created / window_s,
        hold.p50_ms if hold else 0.0,
        hold.p99_ms if hold else 0.0,
        read.p99_ms if read else 0.0,
        cpu.get(GENERATOR_ROLE, 0.0),
        cpu.get(SERVER_ROLE, 0.0),
        cpu.get("machine total", 0.0),
        work["median_ms"] if work else None,
    )


def run_step(
    base_url: str, server_pid: int, population_file: Path, users: int, options: RunOptions, step_dir: Path
) -> StepFigures:
    """One step: Locust as `rezerv loadtest run` starts it, CPU and the cores' speed over its window."""
    step_dir.mkdir(parents=True, exist_ok=True)
    argv = locust_argv(options, _UrlOnly(base_url), users, population_file, step_dir)  # type: ignore[arg-type]
    with (step_dir / "locust.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60 + users / 50 + options.warm_up_s
        while not (step_dir / WINDOW_FILE).exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Locust did not start the window; see {step_dir / 'locust.log'}")
            time.sleep(0.02)
        time.sleep(0.01)
        window = json.loads((step_dir / WINDOW_FILE).read_text())
        cpu = TreeCpuSampler(roots=[proc.pid], singles={SERVER_ROLE: [server_pid]})
        cores = CoreSpeedProbe()
        cpu.start()
        cores.start()
        time.sleep(max(0.0, window["end"] - time.time()))
        used = cpu.stop()
        work = cores.stop()
        proc.wait(options.window_s + 120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return step_figures(users, step_dir, options.window_s, used, work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.generator_ceiling", description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="16,64,256", help="users per step, comma-separated")
    parser.add_argument("--window", type=float, default=30.0, help="measured seconds per step")
    parser.add_argument("--warm-up", type=float, default=3.0, help="seconds before each window")
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--results", type=Path, default=Path("loadtest/results"), help="a run's folder goes under it")
    parser.add_argument(
        "--server",
        choices=("raw", "uvicorn"),
        default="raw",
        help="raw: the null API's own protocol; uvicorn: the same answers through uvicorn, the API's "
        "httptools protocol and an ASGI cycle (uvloop, no access log, as `rezerv up` starts the API)",
    )
    args = parser.parse_args(argv)
    users = [int(u) for u in args.users.split(",")]
    options = RunOptions(users=tuple(users), window_s=args.window, warm_up_s=args.warm_up, customers=args.customers)
    run_dir = args.results / time.strftime("%Y%m%d-%H%M%S-ceiling", time.gmtime())
    run_dir.mkdir(parents=True)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(server_argv(args.server, port))
    try:
        _wait_for_port(port, server)
        population_file = run_dir / "population.json"
        population(base_url, args.customers).save(population_file)
        print(f"{machine_description()}; results in {run_dir}", flush=True)
        print(HEADER, flush=True)
        rows = []
        for index, count in enumerate(users):
            figures = run_step(
                base_url, server.pid, population_file, count, options, run_dir / f"step-{index + 1}-{count}u"
            )
            rows.append(figures.row())
            print(rows[-1], flush=True)
        (run_dir / "ceiling.md").write_text("\n".join([HEADER, *rows]) + "\n")
    finally:
        server.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
        if server.poll() is None:
            server.kill()
    return 0


def server_argv(kind: str, port: int) -> list[str]:
    if kind == "raw":
        return [sys.executable, "-m", "loadtest.null_api", str(port)]
    uvicorn = [sys.executable, "-m", "uvicorn", "loadtest.null_api:asgi_app", "--host", "127.0.0.1"]
    protocol = "api.http_protocol:LimitedHttpToolsProtocol"  # the API's own: httptools, one write per answer
    quiet = ["--no-access-log", "--log-level", "warning"]
    return [*uvicorn, "--port", str(port), "--loop", "uvloop", "--http", protocol, *quiet]


def _wait_for_port(port: int, server: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the null API exited ({server.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the null API did not listen on {port} within {timeout_s:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
