"""`rezerv loadtest`: Locust through the REST API, step by step, then the audit.

For each target (rezerv, then each baseline when comparing), in order:
1. start it (loadtest/targets.py) and create the population through its API (customers with
   funded wallets and tokens, the scenario's events and cars): outside any measured window;
2. for each step (a number of users): top up the hot tier, run Locust headless (its own
   process, several with --locust-processes) until the window ends, sampling CPU per process
   over the window (the load generator's own included), then wait until no request is in flight
   and nothing is HELD (the saga drained), and count what the store says happened in the window;
3. audit the whole run from the store (rezerv: event store and read model; baselines: their
   tables) and stop the target.

Everything is written under the run's directory: per step Locust's CSV and HTML report, its log,
the client records and `summary.json`; per target `summary.json` with the audit; for the run
`summary.json`, `comparison.md` (when comparing) and `chart.png`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest import pg_statements, server_latency
from loadtest.core_speed import CoreSpeed, CoreSpeedProbe, typical_ms
from loadtest.locust_results import errors_by_status, read_routes, requests_in_window
from loadtest.measure import TreeCpuSampler, machine_description
from loadtest.notification_watch import watching
from loadtest.population import ACCOUNTS, FLASH_SALE, HOT_TIER, HOT_TIER_SIZE, Population, create
from loadtest.records import read_acknowledgements, read_client_holds, read_outcome_counts
from loadtest.scenarios.paths import SCENARIO_FILES, WINDOW_FILE, login_users
from loadtest.targets import Quiet, Target, WindowFigures, get_json
from loadtest.wrk_step import convert_records, find_wrk, lua_script, parse_summary, wrk_argv

GENERATOR_SATURATED = 90.0  # percent of a core: above it, a Locust process is the limit, not the target
READ_ROUTE = "GET /bookings/{id}"
HOLD_ROUTES = ("POST /events/{id}/holds", "POST /cars/{id}/holds")
API_BEFORE, API_AFTER = "api-metrics-before.txt", "api-metrics-after.txt"  # the API's /metrics around the window


@dataclass
class RunOptions:
    scenario: str = FLASH_SALE
    users: tuple[int, ...] = (16, 64, 256, 1024)
    window_s: float = 20.0
    # Locust: seconds the users run before the window starts. Without it the window opened with the
    # saga's pipeline empty: its first ~0.6 s confirmed nothing while holds already counted, so
    # confirmed/s could fall short of the sustained rate by up to the hold-to-confirmed time / window.
    warm_up_s: float = 3.0
    read_after_s: float = 2.0
    customers: int = 1_000
    events: int = 50
    cars: int = 20
    locust_processes: int = 1
    spawn_rate: float = 0.0  # users per second; 0: all of a step's users within about a second
    drain_timeout_s: float = 180.0
    web: bool = False
    web_port: int = 8089
    logins_per_s: float = 0.0  # log-ins beside the bookings (argon2 on the server)
    watch: int = 0  # customers whose notification streams this process watches
    generator: str = "locust"  # or "wrk": holds only, no reads (loadtest/wrk_step.py)
    think_ms: int = 0  # wrk: each connection's pause between an answer and its next hold
    unfunded: float = 0.0  # the share of customers left without money: their payments fail


def _log(text: str) -> None:
    print(text, flush=True)


def locust_argv(options: RunOptions, base_url: str, users: int, population_file: Path, step_dir: Path) -> list[str]:
    argv = [sys.executable, "-m", "locust", "-f", str(SCENARIO_FILES[options.scenario]), "--host", base_url]
    argv += ["--population", str(population_file), "--records-dir", str(step_dir)]
    argv += ["--read-after", str(options.read_after_s), "--stop-timeout", "30", "--loglevel", "WARNING"]
    if options.locust_processes != 1:
        argv += ["--processes", str(options.locust_processes)]
    if options.logins_per_s > 0:
        argv += ["--logins-per-s", str(options.logins_per_s)]
        users += login_users(options.logins_per_s)  # the log-in users come on top of the booking users
    rate = options.spawn_rate or float(users)
    argv += ["-u", str(users), "-r", str(rate)]
    if options.web:
        return [*argv, "--web-host", "127.0.0.1", "--web-port", str(options.web_port), "--window", "0"]
    bound = options.warm_up_s + options.window_s + users / rate + 120
    argv += ["--headless", "--only-summary", "--reset-stats", "--window", str(options.window_s)]
    argv += ["--warm-up", str(options.warm_up_s)]
    argv += ["--run-time", f"{int(bound)}s", "--csv", str(step_dir / "locust"), "--html", str(step_dir / "locust.html")]
    return argv


async def wait_for_window(step_dir: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    path = step_dir / WINDOW_FILE
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"Locust did not start the window (exit {proc.poll()}); see {step_dir / 'locust.log'}")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.01)
    return dict(json.loads(path.read_text()))


def _top_up(population: Population) -> None:
    """The flash sale's hot tier back to HOT_TIER_SIZE available, so no step sells out."""
    if population.scenario != FLASH_SALE:
        return
    event_id = population.events[0]["event_id"]
    status, body = get_json(f"{population.base_url}/events/{event_id}", population.admin_token)
    if status != 200:
        raise RuntimeError(f"GET /events/{event_id} answered {status}")
    available = next(t["available"] for t in body["tiers"] if t["name"] == HOT_TIER)
    if available >= HOT_TIER_SIZE // 2:
        return
    from stack.demo import DemoRequest, send_requests

    change = {"change_id": f"top-up-{uuid.uuid4().hex[:8]}", "tier": HOT_TIER, "quantity": HOT_TIER_SIZE - available}
    send_requests(
        population.base_url, population.admin_token, [DemoRequest("POST", f"/events/{event_id}/capacity", change)]
    )


def start_locust(argv: list[str], log_path: Path | None) -> subprocess.Popen[bytes]:
    """Locust in its own process (its output to `log_path`, or to this terminal for the web UI)."""
    if log_path is None:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@dataclass
class WindowMeters:
    """What a step measures over its window beside the load, started and stopped together by the
    Locust and the wrk step alike: CPU per process (the target's, the generator's, the driver's)
    and the cores' speed (loadtest/core_speed.py)."""

    cpu: TreeCpuSampler
    cores: CoreSpeedProbe

    @classmethod
    def start(cls, target: Target, generator_pid: int) -> WindowMeters:
        return cls.around([*target.cpu_roots(), generator_pid])

    @classmethod
    def around(cls, roots: list[int], singles: dict[str, list[int]] | None = None) -> WindowMeters:
        """Started meters over the trees of `roots` and the processes of `singles` (role -> pids),
        the driver (this process) always among them."""
        cpu = TreeCpuSampler(roots=roots, singles={"loadtest driver": [os.getpid()], **(singles or {})})
        cpu.start()
        cores = CoreSpeedProbe()
        cores.start()
        return cls(cpu, cores)

    def stop(self) -> tuple[dict[str, float], CoreSpeed | None]:
        """CPU per role over the window (percent of one core) and the cores' speed."""
        return self.cpu.stop(), self.cores.stop()

    def generator(self) -> list[float]:
        """Each load-generator process's share of a core over the window."""
        return self.cpu.per_process.get("load generator", [])


async def run_step(
    target: Target, population: Population, population_file: Path, users: int, options: RunOptions, step_dir: Path
) -> dict[str, Any]:
    if options.generator == "wrk":
        return await run_wrk_step(target, population, users, options, step_dir)
    await asyncio.to_thread(_top_up, population)
    argv = locust_argv(options, target.base_url, users, population_file, step_dir)
    proc = await asyncio.to_thread(start_locust, argv, step_dir / "locust.log")
    try:
        async with watching(population, options.watch) as watch:
            window = await wait_for_window(step_dir, proc, 60 + users / 50 + options.warm_up_s)
            meters = WindowMeters.start(target, proc.pid)
            statements_before = await target.statement_counters()
            api_before = await asyncio.to_thread(server_latency.scrape, target.base_url, step_dir / API_BEFORE)
            await asyncio.sleep(max(0.0, window["end"] - time.time()))
            cpu, core_speed = meters.stop()
            statements_after = await target.statement_counters()
            api_after = await asyncio.to_thread(server_latency.scrape, target.base_url, step_dir / API_AFTER)
            await asyncio.sleep(2.0)  # outcomes of the window's last bookings still arriving
        generator = meters.generator()
        code = await asyncio.to_thread(proc.wait, options.window_s + 180)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # Locust's graceful shutdown (SIGINT may be ignored in the background)
            await asyncio.to_thread(proc.wait, 60)
    quiet = await target.quiet(population, options.drain_timeout_s)
    figures = await target.window(population, window["start"], window["end"])
    summary = step_summary(target, users, options, step_dir, window, cpu, generator, quiet, figures, code)
    summary |= server_latency.between(api_before, api_after)
    summary["core_speed"] = core_speed
    summary |= statements_in_window(statements_before, statements_after, figures)
    if options.watch:
        summary["notifications"] = watch.summary()
    (step_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


async def run_wrk_step(
    target: Target, population: Population, connections: int, options: RunOptions, step_dir: Path
) -> dict[str, Any]:
    """A step driven by wrk: `connections` connections posting holds for the window, no reads.
    The window is wrk's run; the rest (quiet, the store's count, the summary) is a Locust step's."""
    wrk = find_wrk()
    await asyncio.to_thread(_top_up, population)
    event = population.events[0]
    script = step_dir / "wrk.lua"
    prefix = f"{population.tag}-{uuid.uuid4().hex[:8]}"
    path = f"/events/{event['event_id']}/holds"
    text = lua_script(population.customers, path, event["tiers"][0], prefix, step_dir, options.think_ms)
    argv = wrk_argv(wrk, target.base_url, connections, options.window_s, script)
    log_path = step_dir / "wrk.log"
    api_before = await asyncio.to_thread(server_latency.scrape, target.base_url, step_dir / API_BEFORE)
    start = time.time()
    proc = await asyncio.to_thread(_start_wrk, argv, script, text, log_path)
    try:
        meters = WindowMeters.start(target, proc.pid)
        statements_before = await target.statement_counters()
        end = start + max(1, round(options.window_s))
        await asyncio.sleep(max(0.0, end - time.time()))
        cpu, core_speed = meters.stop()
        statements_after = await target.statement_counters()
        code = await asyncio.to_thread(proc.wait, 60)
        api_after = await asyncio.to_thread(server_latency.scrape, target.base_url, step_dir / API_AFTER)
    finally:
        if proc.poll() is None:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)
    await asyncio.sleep(2.0)  # outcomes of the window's last bookings still arriving
    figures_of_wrk = parse_summary(await asyncio.to_thread(log_path.read_text))
    answers = await asyncio.to_thread(
        convert_records, step_dir, step_dir, population.customers, "event", event["event_id"]
    )
    quiet = await target.quiet(population, options.drain_timeout_s)
    figures = await target.window(population, start, end)
    length = end - start
    statuses = dict(answers.statuses)
    unanswered = answers.sent - sum(statuses.values())  # in flight when wrk stopped, or timed out
    hold_route = {
        "requests": figures_of_wrk["requests"],
        "failures": figures_of_wrk["requests"] - statuses.get("201", 0),
        "p50_ms": round(figures_of_wrk["p50_us"] / 1000, 1),
        "p95_ms": round(figures_of_wrk["p95_us"] / 1000, 1),
        "p99_ms": round(figures_of_wrk["p99_us"] / 1000, 1),
        "statuses": dict(sorted(statuses.items())),
    }
    generator = meters.generator()
    summary = {
        "target": target.name,
        "scenario": options.scenario,
        "generator": "wrk",
        "users": connections,
        "think_ms": options.think_ms,
        "window_s": round(length, 2),
        "requests_per_s": round(figures_of_wrk["requests"] / length, 1),
        "holds_per_s": round(answers.acknowledged / length, 1),
        "hold_p50_ms": hold_route["p50_ms"],
        "hold_p99_ms": hold_route["p99_ms"],
        **after_the_window(figures, quiet, length),
        "booking_reads_404": 0,
        "errors_by_status": {k: v for k, v in statuses.items() if k != "201"},
        "socket_errors": {k: figures_of_wrk[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")},
        "unanswered": unanswered,
        "unmatched_201": answers.unmatched,
        "keys": answers.keys(),
        "routes": {HOLD_ROUTES[0]: hold_route},
        "cpu_percent": cpu,
        **cost_per_booking(cpu, length, answers.acknowledged, figures.confirmed + figures.released),
        "generator_processes_percent": generator,
        "generator_saturated": any(p >= GENERATOR_SATURATED for p in generator),
        "generator_exit": code,
        **server_latency.between(api_before, api_after),
        "core_speed": core_speed,
        **statements_in_window(statements_before, statements_after, figures),
    }
    (step_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _start_wrk(argv: list[str], script: Path, text: str, log_path: Path) -> subprocess.Popen[bytes]:
    """The script written, wrk started with its output to `log_path`."""
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(text)
    with log_path.open("wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def step_summary(
    target: Target,
    users: int,
    options: RunOptions,
    step_dir: Path,
    window: dict[str, float],
    cpu: dict[str, float],
    generator: list[float],
    quiet: Quiet,
    figures: WindowFigures,
    locust_exit: int,
) -> dict[str, Any]:
    start, end = window["start"], window["end"]
    length = end - start
    routes = read_routes(step_dir)
    counted = requests_in_window(step_dir, start, end)
    total = routes.get("Aggregated")
    requests_per_s = (
        counted[0] / counted[1] if counted and counted[1] > 0 else (total.requests / length if total else 0)
    )
    acks = {a.hold_id for a in read_acknowledgements(step_dir) if start <= a.at <= end}
    reads = routes.get(READ_ROUTE)
    hold = next((routes[r] for r in HOLD_ROUTES if r in routes), None)
    summary = {
        "target": target.name,
        "scenario": options.scenario,
        "users": users,
        "window_s": round(length, 2),
        "requests_per_s": round(requests_per_s, 1),
        "holds_per_s": round(len(acks) / length, 1),
        "hold_p50_ms": hold.p50_ms if hold else None,
        "hold_p99_ms": hold.p99_ms if hold else None,
        **after_the_window(figures, quiet, length),
        "booking_reads_404": reads.statuses.get("404", 0) if reads else 0,
        "errors_by_status": errors_by_status(routes),
        "keys": read_outcome_counts(step_dir),
        "routes": {name: r.as_json() for name, r in routes.items()},
        "cpu_percent": cpu,
        **cost_per_booking(cpu, length, len(acks), figures.confirmed + figures.released),
        "generator_processes_percent": generator,
        "generator_saturated": any(p >= GENERATOR_SATURATED for p in generator),
        "locust_processes": options.locust_processes,
        "locust_exit": locust_exit,
    }
    return summary


def unfunded_customers(options: RunOptions) -> int:
    """How many of the customers get no money (`--unfunded`, a share of `--customers`)."""
    return round(options.unfunded * options.customers)


def after_the_window(figures: WindowFigures, quiet: Quiet, window_s: float) -> dict[str, Any]:
    """What the store says of a step's window (bookings confirmed, and released because their
    payment failed; the saga's latency; what was still HELD) and how long the system took to be
    quiet after it: the same for every load generator."""
    return {
        "confirmed_per_s": round(figures.confirmed / window_s, 1),
        "released_per_s": round(figures.released / window_s, 1),
        "hold_to_confirmed_p50_ms": figures.confirm_p50_ms,
        "hold_to_confirmed_p99_ms": figures.confirm_p99_ms,
        "held_at_end": figures.held_at_end,
        "drain_s": round(figures.drain_s, 2),
        "quiet_after_s": round(quiet.waited_s, 2),
        "left_in_flight": quiet.in_flight,
        "left_held": quiet.held,
    }


def statements_in_window(
    before: list[pg_statements.StatementCounters] | None,
    after: list[pg_statements.StatementCounters] | None,
    figures: WindowFigures,
) -> dict[str, Any]:
    """A step's `pg_statements` (loadtest/pg_statements.py) when its target counts statements
    (REZERV_PG_STATEMENTS=1), per booking settled in the window as CPU per booking is; else nothing."""
    if before is None or after is None:
        return {}
    return {"pg_statements": pg_statements.per_booking(before, after, figures.confirmed + figures.released)}


SAGA_ROLES = ("saga services", "kafka")


def cost_per_booking(cpu: dict[str, float], window_s: float, holds: int, settled: int) -> dict[str, Any]:
    """CPU per unit of work in the window, from the CPU per role (percent of one core).

    `settled`: the bookings the saga finished in the window, confirmed or (their payment having
    failed) released; with every customer funded, the confirmed ones.
    `cpu_us_per_booking`: each role's CPU divided by the bookings settled in the window.
    `api_us_per_hold`: the API process's CPU divided by the holds it granted (its booking reads
    included, so an upper bound). `saga_us_per_booking`: the saga's own processes (the services:
    relay, projections, supervisor, payment worker, notifier; and the broker) per settled
    booking; the shards' and PostgreSQL's shares of a booking are in `cpu_us_per_booking`."""

    def per(role_cpu: float, units: int) -> float | None:
        return round(role_cpu / 100 * window_s / units * 1e6, 1) if units else None

    return {
        "cpu_us_per_booking": {role: per(value, settled) for role, value in cpu.items()},
        "api_us_per_hold": per(cpu.get("api", 0.0), holds),
        "saga_us_per_booking": per(sum(cpu.get(role, 0.0) for role in SAGA_ROLES), settled),
    }


def _share(share: float | None) -> str:
    return "?" if share is None else f"{share * 100:.1f}%"


def describe_step(s: dict[str, Any]) -> str:
    cpu = ", ".join(f"{k} {v:.0f}%" for k, v in s["cpu_percent"].items())
    warn = "  [LOAD GENERATOR SATURATED]" if s["generator_saturated"] else ""
    released = f", {s['released_per_s']:.0f} released/s (payment failed)" if s.get("released_per_s") else ""
    own = s.get("api_admitted_holds")
    if own and own["admitted"]:
        bound = f"at most {own['p99_at_most_ms']} ms" if own["p99_at_most_ms"] is not None else "over 5 s"
        warn += (
            f"\n      the API's own time, admission to answer, for the {own['admitted']} holds it admitted and answered"
            f" in the window: p99 {bound}, {_share(own.get('within_150ms'))} within 150 ms,"
            f" {_share(own['within_250ms'])} within 250 ms"
        )
    calls = s.get("api_engine_calls")
    if calls and calls["calls"]:
        warn += (
            f"\n      the API's calls to shards: {calls['calls']}, of which {calls['over_100ms']} over 100 ms"
            f" and {calls['over_250ms']} over 250 ms"
        )
    speed = s.get("core_speed")
    if speed:
        warn += (
            f"\n      the cores: a fixed piece of work took {typical_ms(speed)} ms of CPU"
            f" (mean of {speed['samples']}, median {speed['median_ms']}, p10-p90 {speed['p10_ms']}-{speed['p90_ms']};"
            " higher is slower, loadtest/core_speed.py)"
        )
    if s.get("generator") == "wrk":
        errors = {k: v for k, v in s["socket_errors"].items() if v}
        warn += f"\n      wrk: {s['unanswered']} requests in flight when it stopped; socket errors {errors or 'none'}"
    logins = s["routes"].get("POST /auth/login")
    if logins:
        rate = logins["requests"] / s["window_s"] if s["window_s"] else 0
        warn += (
            f"\n      log-ins: {rate:.1f}/s, p50 {logins['p50_ms']} ms p99 {logins['p99_ms']} ms, "
            f"statuses {logins['statuses']}"
        )
    if "notifications" in s:
        n = s["notifications"]
        warn += (
            f"\n      notifications seen: {n['notifications']}, outcome -> stream p50 {n['p50_ms']} ms "
            f"p99 {n['p99_ms']} ms"
        )
    statements = (
        "\n" + pg_statements.describe(s["pg_statements"]) if s.get("pg_statements") else ""
    )  # with REZERV_PG_STATEMENTS=1
    return (
        f"  {s['target']:>18} {s['users']:>5} users: {s['requests_per_s']:>8.0f} req/s, "
        f"{s['holds_per_s']:>7.0f} holds/s, "
        f"{s['confirmed_per_s']:>7.0f} confirmed/s{released}, "
        f"hold p50 {s['hold_p50_ms']} ms p99 {s['hold_p99_ms']} ms, "
        f"hold->confirmed p50 {s['hold_to_confirmed_p50_ms']} ms p99 {s['hold_to_confirmed_p99_ms']} ms, "
        f"HELD at end {s['held_at_end']} (drained in {s['drain_s']} s), errors {s['errors_by_status']}, "
        f"404 reads {s['booking_reads_404']}{warn}\n      CPU: {cpu}\n"
        f"      CPU per booking: API {s['api_us_per_hold']} us per hold, saga {s['saga_us_per_booking']} us; "
        + ", ".join(f"{k} {v}" for k, v in s["cpu_us_per_booking"].items() if v is not None and k != "machine total")
        + statements
    )


def step_dir_name(users: Sequence[int], index: int) -> str:
    """`users-00064`, or `users-00064-2` for the third step when a run repeats a step (a soak)."""
    name = f"users-{users[index]:05d}"
    return name if users.count(users[index]) == 1 else f"{name}-{index}"


async def run_target(target: Target, options: RunOptions, run_dir: Path, tag: str) -> dict[str, Any]:
    """Start `target`, populate it, run every step, audit, stop. Returns the target's summary."""
    target_dir = run_dir / target.name
    target_dir.mkdir(parents=True, exist_ok=True)
    _log(f"{target.name}: starting")
    await start_or_undo(target.start, functools.partial(target.stop, target_dir / "logs"))
    try:
        t0 = time.monotonic()
        unfunded = unfunded_customers(options)
        population = await asyncio.to_thread(
            create,
            options.scenario,
            target.base_url,
            target.jwt_secret,
            tag,
            options.customers,
            options.events,
            options.cars,
            accounts=ACCOUNTS if options.logins_per_s > 0 else 0,
            unfunded=unfunded,
        )
        population_file = target_dir / "population.json"
        population.save(population_file)
        took = time.monotonic() - t0
        unpaid = f" ({unfunded} more without money)" if unfunded else ""
        funded = len(population.customers) - unfunded
        _log(f"{target.name}: {funded} customers funded{unpaid}, catalog created ({took:.1f} s)")
        steps = []
        if options.web:
            await _web_session(target, population, population_file, options, target_dir / "web")
        else:
            for index, users in enumerate(options.users):
                step = await run_step(
                    target,
                    population,
                    population_file,
                    users,
                    options,
                    target_dir / step_dir_name(options.users, index),
                )
                steps.append(step)
                _log(describe_step(step))
        verdict = await target.audit(population, read_client_holds(target_dir))
        _log(verdict.table())
        summary = {"target": target.name, "scenario": options.scenario, "steps": steps, "audit": verdict.as_json()}
        (target_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    finally:
        close = getattr(target, "close", None)
        if close is not None:
            await close()
        await asyncio.to_thread(target.stop, target_dir / "logs")
        _log(f"{target.name}: stopped")


async def start_or_undo(start: Callable[[], None], stop: Callable[[], None]) -> None:
    """`start()` in a thread. A thread cannot be interrupted: when this is cancelled (SIGTERM)
    during the start, `stop()` what is already running, which makes the start fail at once, wait
    for the thread to end, and `stop()` again whatever it started after the first stop."""
    starting = asyncio.ensure_future(asyncio.to_thread(start))
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        await asyncio.to_thread(stop)
        with contextlib.suppress(Exception):
            await starting
        await asyncio.to_thread(stop)
        raise


async def _web_session(
    target: Target, population: Population, population_file: Path, options: RunOptions, step_dir: Path
) -> None:
    """Locust's web UI against the target until the user ends the session (Ctrl-C or SIGTERM here,
    or Locust exits), then wait until the target is quiet."""
    argv = locust_argv(options, target.base_url, options.users[0], population_file, step_dir)
    _log(
        f"Locust's web UI: http://127.0.0.1:{options.web_port} (host {target.base_url}). Start and stop "
        f"the load there; press Ctrl-C here to end the session, audit it and stop {target.name}."
    )
    proc = await asyncio.to_thread(start_locust, argv, None)
    ended = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (in the background)
        loop.add_signal_handler(sig, ended.set)
    try:
        exited = asyncio.create_task(asyncio.to_thread(proc.wait))
        await asyncio.wait({exited, asyncio.create_task(ended.wait())}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # Locust's graceful shutdown (SIGINT may be ignored in the background)
        await asyncio.to_thread(proc.wait, 60)
    _log("web session ended; waiting for the system to be quiet, then the audit")
    await target.quiet(population, options.drain_timeout_s)


def write_run(run_dir: Path, options: RunOptions, results: list[dict[str, Any]], argv: list[str]) -> bool:
    """The run's summary, comparison table and chart; True when every audit passed."""
    from loadtest.report import comparison_markdown, draw_chart, round_count

    summary = {
        "command": "rezerv loadtest " + " ".join(argv),
        "machine": machine_description(),
        "scenario": options.scenario,
        "window_s": options.window_s,
        "users": list(options.users),
        "customers": options.customers,
        "targets": results,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if len(results) > 1:
        table = comparison_markdown(results)
        (run_dir / "comparison.md").write_text(table + "\n")
        _log(table)
    if any(r["steps"] for r in results):
        rounds = round_count(results)
        title = f"{options.scenario}, {options.window_s:.0f} s per step" + (
            f", mean of {rounds} rounds" if rounds > 1 else ""
        )
        draw_chart(results, run_dir / "chart.png", title=title)
    ok = all(r["audit"]["ok"] for r in results)
    _log(f"results in {run_dir}; audit {'passed' if ok else 'FAILED'}")
    return ok
