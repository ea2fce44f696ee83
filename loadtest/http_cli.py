"""`rezerv loadtest run|compare`: Locust through the REST API, the lock-based baselines, the audit.

    rezerv loadtest run [--scenario flash-sale|rental-storm|browse-and-book] [--users 16,64,256,1024]
    rezerv loadtest run --web                 # Locust's web UI instead of the step load
    rezerv loadtest compare                   # the flash sale on rezerv, then on each baseline
    rezerv loadtest compare --rounds 2        # then again in the reverse order (A B B A)
    rezerv loadtest run --generator wrk --users 256 --window 60   # holds only, from wrk (C)

Exit status 1 when an audit fails (or a target does not start), 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.baselines.strategies import STRATEGIES
from loadtest.http_run import RunOptions, run_target, start_or_undo, write_run
from loadtest.population import FLASH_SALE, SCENARIOS
from loadtest.targets import BaselineServers, BaselineTarget, RezervTarget, Target
from stack import arguments
from stack.arguments import COUNT, COUNT_OR_0, PORT, RATE, SECONDS, SECONDS_ABOVE_0, counts
from stack.processes import StartupError

DEFAULT_RESULTS = Path("loadtest/results")
GENERATORS = ("locust", "wrk")


_user_counts = counts("user counts")


def _users(text: str) -> tuple[int, ...]:
    """`16,64,256`: the users of each step, in order."""
    return tuple(_user_counts(text))


def _locust_processes(text: str) -> int:
    if text.strip() == "-1":
        return -1
    try:
        return int(COUNT(text))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of processes (1 or more, or -1: one per core)"
        ) from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=_users, default=(16, 64, 256, 1024), help="the step load: users per step")
    parser.add_argument("--window", type=SECONDS_ABOVE_0, default=20.0, help="measured seconds per step")
    parser.add_argument(
        "--warm-up",
        type=SECONDS,
        default=3.0,
        help="Locust: seconds each step's users run before its window starts (the saga's pipeline fills)",
    )
    parser.add_argument("--customers", type=COUNT, default=1_000, help="distinct customers, each funded, own token")
    parser.add_argument("--read-after", type=SECONDS, default=2.0, help="seconds between a hold and reading it")
    parser.add_argument(
        "--locust-processes", type=_locust_processes, default=1, help="Locust processes (-1: one per core); see README"
    )
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="a run's folder goes under it")
    parser.add_argument("--drain-timeout", type=SECONDS_ABOVE_0, default=180.0, help="longest wait for nothing HELD")
    parser.add_argument("--logins-per-s", type=RATE, default=0.0, help="log-ins per second beside the bookings")
    parser.add_argument("--watch", type=COUNT_OR_0, default=0, help="customers whose notification streams are timed")
    parser.add_argument(
        "--generator",
        choices=GENERATORS,
        default="locust",
        help="locust (holds and reads, as users do) or wrk (holds only, each step's users are connections;"
        " the flash sale only; wrk must be installed)",
    )
    parser.add_argument(
        "--think-ms",
        type=COUNT_OR_0,
        default=0,
        help="wrk: each connection waits this long between an answer and its next hold"
        " (N connections offer at most N*1000/think holds/s)",
    )


def compare_order(targets: Sequence[str], rounds: int) -> list[list[str]]:
    """The targets of each round of `compare`: rezerv, then the baselines, and every second round
    the other way round. Run after run, the machine's speed drifted by up to 1.8x within an hour
    (BENCHMARKS.md, section 3), so a system that always ran first would carry its own minutes'
    luck; in A B B A order a steady drift cancels out of the means."""
    forward = [name for name in ("rezerv", *STRATEGIES) if name in targets]
    return [forward if number % 2 == 0 else forward[::-1] for number in range(rounds)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rezerv loadtest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="which", required=True)
    run = sub.add_parser("run", help="one scenario on rezerv (started for the run, or --base-url)")
    run.add_argument("--scenario", choices=SCENARIOS, default=FLASH_SALE)
    run.add_argument("--events", type=COUNT, default=50, help="browse-and-book: events in the catalog")
    run.add_argument("--cars", type=COUNT, default=20, help="rental-storm and browse-and-book: cars in the fleet")
    run.add_argument("--base-url", default="", help="a running rezerv API instead of starting `rezerv up`")
    run.add_argument("--database-url", default="", help="with --base-url: its PostgreSQL, for the audit")
    run.add_argument("--jwt-secret", default="", help="with --base-url: its JWT secret (or --data-dir)")
    run.add_argument("--data-dir", type=Path, default=None, help="with --base-url: its data directory")
    run.add_argument("--web", action="store_true", help="Locust's web UI instead of the step load")
    run.add_argument("--web-port", type=PORT, default=8089)
    run.add_argument(
        "--unfunded",
        type=arguments.number(float, "a share from 0 to 1 (0.25: a quarter)", 0.0, most=1.0),
        default=0.0,
        help="the share of customers (0 to 1) left without money: their bookings fail to pay and are released",
    )
    _common(run)
    compare = sub.add_parser("compare", help="the flash sale on rezerv and on each lock-based baseline, back to back")
    compare.add_argument(
        "--targets",
        type=lambda s: tuple(x for x in s.split(",") if x),
        default=("rezerv", *STRATEGIES),
        help=f"comma-separated, from rezerv,{','.join(STRATEGIES)}",
    )
    compare.add_argument(
        "--rounds",
        type=arguments.number(int, "a number of rounds (1 or more)", 1),
        default=1,
        help="run every target this many times, every second round in the reverse order (A B B A),"
        " and compare their means: a drift of the machine's speed during the run then weighs on every"
        " system alike",
    )
    _common(compare)
    return parser


def _options(args: argparse.Namespace, scenario: str) -> RunOptions:
    return RunOptions(
        scenario=scenario,
        users=args.users,
        window_s=args.window,
        warm_up_s=args.warm_up,
        read_after_s=args.read_after,
        customers=args.customers,
        events=getattr(args, "events", 50),
        cars=getattr(args, "cars", 20),
        locust_processes=args.locust_processes,
        drain_timeout_s=args.drain_timeout,
        web=getattr(args, "web", False),
        web_port=getattr(args, "web_port", 8089),
        logins_per_s=args.logins_per_s,
        watch=args.watch,
        generator=args.generator,
        think_ms=args.think_ms,
        unfunded=getattr(args, "unfunded", 0.0),
    )


def generator_problem(args: argparse.Namespace, scenario: str) -> str | None:
    """Why the options cannot run together: what wrk cannot do (it posts holds for one hot event and
    nothing else). Each value on its own was checked by the parser."""
    if args.generator != "wrk":
        return "--think-ms is for --generator wrk (Locust users do not pause)" if args.think_ms else None
    if scenario != FLASH_SALE:
        return "--generator wrk runs the flash sale only"
    unsupported = [
        flag
        for flag, used in (
            ("--web", getattr(args, "web", False)),
            ("--logins-per-s", args.logins_per_s > 0),
            ("--watch", args.watch > 0),
            ("--locust-processes", args.locust_processes != 1),
        )
        if used
    ]
    if unsupported:
        return f"--generator wrk does not take {', '.join(unsupported)} (Locust options)"
    from loadtest.wrk_step import WrkMissing, find_wrk

    try:
        find_wrk()
    except WrkMissing as exc:
        return str(exc)
    return None


def _rezerv_target(args: argparse.Namespace) -> RezervTarget:
    secret = getattr(args, "jwt_secret", "")
    data_dir = getattr(args, "data_dir", None)
    if not secret and data_dir is not None:
        secret = (data_dir / "jwt_secret").read_text().strip()
    return RezervTarget(
        base_url=getattr(args, "base_url", ""), database_url=getattr(args, "database_url", ""), jwt_secret=secret
    )


def _stop_on_sigterm() -> None:
    """SIGTERM (`kill`, a job runner's timeout) ends the run as Ctrl-C does: the run's task is
    cancelled, so every `finally` on the way out stops what it started (Locust, the `rezerv up` or
    the baseline servers of the target in hand). Python's default for SIGTERM is to exit at once,
    which left a target's `rezerv up` running, restarting the servers anyone stopped by hand."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    _stop_on_sigterm()
    scenario = FLASH_SALE if args.which == "compare" else args.scenario
    problem = generator_problem(args, scenario)
    if problem:
        print(f"rezerv loadtest: {problem}", file=sys.stderr)
        return 2
    options = _options(args, scenario)
    tag = uuid.uuid4().hex[:6]
    run_dir = args.results / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    if args.which == "run":
        results.append(await run_target(_rezerv_target(args), options, run_dir, tag))
        return 0 if write_run(run_dir, options, results, list(argv)) else 1
    unknown = set(args.targets) - {"rezerv", *STRATEGIES}
    if unknown:
        raise SystemExit(f"rezerv loadtest compare: unknown target {', '.join(sorted(unknown))}")
    for number, order in enumerate(compare_order(args.targets, args.rounds), start=1):
        round_dir = run_dir if args.rounds == 1 else run_dir / f"round-{number}"
        results += await _compare_round(order, options, round_dir, tag, number)
    return 0 if write_run(run_dir, options, results, list(argv)) else 1


async def _compare_round(
    order: Sequence[str], options: RunOptions, round_dir: Path, tag: str, number: int
) -> list[dict[str, Any]]:
    """Each target of one round in turn, from a fresh start. The baselines share one PostgreSQL and
    Valkey, started for them and stopped before rezerv starts: each system has the machine alone."""
    import secrets

    results: list[dict[str, Any]] = []
    servers: BaselineServers | None = None
    logs = round_dir / "baseline-servers" / "logs"
    try:
        for name in order:
            target: Target
            if name == "rezerv":
                if servers is not None:
                    await asyncio.to_thread(servers.stop, logs)
                    servers = None
                target = RezervTarget()
            else:
                if servers is None:
                    servers = BaselineServers()
                    await start_or_undo(servers.start, functools.partial(servers.stop, logs))
                target = BaselineTarget(name, servers, secrets.token_urlsafe(32))
            results.append(await run_target(target, options, round_dir, tag) | {"round": number})
    finally:
        if servers is not None:
            await asyncio.to_thread(servers.stop, logs)
    return results


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        import uvloop

        return uvloop.run(_run(args, argv))
    except asyncio.CancelledError:
        print("rezerv loadtest: stopped by SIGTERM; every target it started is stopped", file=sys.stderr)
        return 128 + signal.SIGTERM
    except StartupError as exc:
        print(f"rezerv loadtest: a target did not start.\n{exc}", file=sys.stderr)
        return 1
