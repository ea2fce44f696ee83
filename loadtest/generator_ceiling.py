"""The load generator's own ceiling: the flash sale's Locust users against an API that does nothing.

    python -m loadtest.generator_ceiling [--users 16,64,256] [--window 30] [--results DIR]

Why: every figure of `rezerv loadtest` is timed by Locust on the same two cores as the system it
measures, and in a closed loop a user's next hold waits for its last answer. How many bookings a
second Locust itself can drive at a step, and what hold p99 it reports when the server costs next
to nothing, bounds what any system can show on this machine: a target above that bound is not a
target for the system. This runs the very scenario `rezerv loadtest run` runs (the same Locust
command line, population file and records) against `NullApi` (loadtest/null_api.py), a server on
uvloop and httptools that answers a hold with a 201 and a read with a 200 without storing anything,
and prints per step the bookings a second, the hold's p50 and p99, and the CPU Locust and the
server took per booking.

Nothing here is a product path; the server checks nothing and keeps nothing. The audit, the drain
and the store's counts of `rezerv loadtest` do not apply: the bookings a second are the 201s Locust
counted in the window.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from loadtest.core_speed import CoreSpeed, typical_ms
from loadtest.http_run import (
    HOLD_ROUTES,
    READ_ROUTE,
    RunOptions,
    WindowMeters,
    locust_argv,
    start_locust,
    wait_for_window,
)
from loadtest.locust_results import read_routes
from loadtest.measure import machine_description
from loadtest.population import HOT_TIER, Customer, Population
from stack.processes import ManagedProcess, free_port, tcp_accepts

HOLD_ROUTE = HOLD_ROUTES[0]  # the flash sale holds seats of an event
SERVER_ROLE = "null api"
GENERATOR_ROLE = "load generator"


def population(base_url: str, customers: int) -> Population:
    """Customers with made-up tokens (the null API checks none) and one event with the hot tier."""
    people = [Customer(f"null-customer-{i}", f"token-{i}") for i in range(customers)]
    return Population("flash-sale", base_url, "null", "", people, [{"event_id": "null-event", "tiers": [HOT_TIER]}])


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


def step_figures(
    users: int, step_dir: Path, window_s: float, cpu: dict[str, float], work: CoreSpeed | None
) -> StepFigures:
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
        typical_ms(work) if work else None,
    )


def run_step(
    base_url: str, server_pid: int, population_file: Path, users: int, options: RunOptions, step_dir: Path
) -> StepFigures:
    """One step: Locust as `rezerv loadtest run` starts it, CPU and the cores' speed over its window."""
    argv = locust_argv(options, base_url, users, population_file, step_dir)
    proc = start_locust(argv, step_dir / "locust.log")
    try:
        window = asyncio.run(wait_for_window(step_dir, proc, 60 + users / 50 + options.warm_up_s))
        meters = WindowMeters.around([proc.pid], {SERVER_ROLE: [server_pid]})
        time.sleep(max(0.0, window["end"] - time.time()))
        used, work = meters.stop()
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
    server = null_server(args.server, free_port(), run_dir / "server.log")
    try:
        base_url = f"http://127.0.0.1:{server.port}"
        population_file = run_dir / "population.json"
        population(base_url, args.customers).save(population_file)
        print(f"{machine_description()}; results in {run_dir}", flush=True)
        print(HEADER, flush=True)
        rows = []
        for index, count in enumerate(users):
            step_dir = run_dir / f"step-{index + 1}-{count}u"
            figures = run_step(base_url, server.pid, population_file, count, options, step_dir)
            rows.append(figures.row())
            print(rows[-1], flush=True)
        (run_dir / "ceiling.md").write_text("\n".join([HEADER, *rows]) + "\n")
    finally:
        server.process.stop()
    return 0


@dataclass(frozen=True)
class NullServer:
    process: ManagedProcess
    port: int
    pid: int


def null_server(kind: str, port: int, log_path: Path, timeout_s: float = 15.0) -> NullServer:
    """The null API (`raw`: its own protocol; `uvicorn`: through uvicorn) started and listening."""
    if kind == "raw":
        argv = [sys.executable, "-m", "loadtest.null_api", str(port)]
    else:
        uvicorn = [sys.executable, "-m", "uvicorn", "loadtest.null_api:asgi_app", "--host", "127.0.0.1"]
        protocol = "api.http_protocol:LimitedHttpToolsProtocol"  # the API's own: httptools, one write per answer
        quiet = ["--no-access-log", "--log-level", "warning"]
        argv = [*uvicorn, "--port", str(port), "--loop", "uvloop", "--http", protocol, *quiet]
    process = ManagedProcess(name=f"the null API ({kind})", argv=argv, log_path=log_path)
    process.start()
    process.wait_ready(lambda: tcp_accepts(port), timeout_s)
    assert process.popen is not None  # started above
    return NullServer(process, port, process.popen.pid)


if __name__ == "__main__":
    raise SystemExit(main())
