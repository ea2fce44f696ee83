"""`rezerv bench ...`: the benchmarks whose results are recorded in BENCHMARKS.md."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from stack.arguments import COUNT, SECONDS_ABOVE_0, counts

if TYPE_CHECKING:
    from loadtest.bench_append import Size

ENGINE_SCENARIOS = ("hot-sellout", "hot-sustained", "many-events", "cars")
APPEND_SIZES = "1x1,1x9,1x30,20x1,1x100,100x1,1x300,300x1,1x1000"


def _group_sizes(text: str) -> list[Size]:
    """`1x9,20x1`: the benchmark's group sizes, each parsed by its own rule (`Size.parse`)."""
    from loadtest.bench_append import Size  # its imports only when `bench append` runs

    try:
        sizes = [Size.parse(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of STREAMSxEVENTS group sizes, each 1x1 or more")
    return sizes


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="rezerv bench")
    sub = parser.add_subparsers(dest="which", required=True)
    engine = sub.add_parser("engine", help="the actor path without HTTP: holds/s, latency, CPU, audit")
    engine.add_argument(
        "--scenario",
        type=lambda s: s.split(","),
        default=list(ENGINE_SCENARIOS),
        help=f"comma-separated subset of {','.join(ENGINE_SCENARIOS)}",
    )
    engine.add_argument("--callers", type=counts("caller counts"), default=[64, 256, 1024], help="hot-sellout sweep")
    engine.add_argument("--sustained-callers", type=COUNT, default=1024)
    engine.add_argument("--window", type=SECONDS_ABOVE_0, default=15.0, help="seconds of the sustained run")
    engine.add_argument("--shards", type=COUNT, default=2)
    engine.add_argument("--batch-max", type=COUNT, default=256)
    engine.add_argument("--calls-in-flight", type=COUNT, default=4)
    engine.add_argument("--commit-max", type=COUNT, default=4096)
    engine.add_argument("--commits-in-flight", type=COUNT, default=1)
    engine.add_argument("--db-pool", type=COUNT, default=4)
    engine.add_argument("--json", default="", help="also write the results to this file")
    saga = sub.add_parser("saga", help="hold -> confirmed latency of the whole saga under a steady load")
    saga.add_argument("--rates", type=counts("rates"), default=[200, 1000, 2000], help="holds per second, one run each")
    saga.add_argument("--window", type=SECONDS_ABOVE_0, default=10.0, help="seconds of load per rate")
    saga.add_argument("--json", default="", help="also write the results to this file")
    for name, default in (
        ("--shards", 2),
        ("--batch-max", 256),
        ("--calls-in-flight", 4),
        ("--commit-max", 4096),
        ("--commits-in-flight", 1),
        ("--db-pool", 4),
    ):
        saga.add_argument(name, type=COUNT, default=default)
    sub.add_parser("consumers", help="CPU per booking of the notifier and the ledger projection, in-process")
    calls = sub.add_parser("ray-calls", help="CPU of one Ray actor call in the caller and the actor, by call pattern")
    calls.add_argument("--seconds", type=SECONDS_ABOVE_0, default=6.0, help="seconds per pattern")
    calls.add_argument("--json", default="", help="also write the results to this file")
    append = sub.add_parser("append", help="a group commit in one statement against COPY, by group size")
    append.add_argument(
        "--sizes",
        type=_group_sizes,
        default=APPEND_SIZES,  # a string, so argparse parses it with the type too
        help="comma-separated STREAMSxEVENTS group sizes",
    )
    append.add_argument(
        "--events", type=COUNT, default=9000, help="events appended per shape and round (200 commits at least)"
    )
    append.add_argument("--rounds", type=COUNT, default=2, help="rounds of the two shapes, alternating")
    append.add_argument("--json", default="", help="also write the results to this file")
    snapshot = sub.add_parser("snapshot", help="a hot event's snapshot saved whole or in parts: the event loop held")
    snapshot.add_argument("--bookings", type=COUNT, default=100_000, help="confirmed bookings in the event's memory")
    snapshot.add_argument("--rounds", type=COUNT, default=5, help="rounds of the two ways, alternating")
    snapshot.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args(list(argv))

    if args.which == "engine":
        from loadtest.bench_engine import run

        unknown = set(args.scenario) - set(ENGINE_SCENARIOS)
        if unknown:
            parser.error(f"unknown scenario {', '.join(sorted(unknown))}")
        import uvloop

        results = uvloop.run(run(args))
        return 0 if all(r.audit.get("ok") for r in results) else 1
    if args.which == "saga":
        import uvloop

        from loadtest.bench_saga import run as run_saga

        saga_results = uvloop.run(run_saga(args))
        return 0 if all(r.other_endings == {} for r in saga_results) else 1
    if args.which == "ray-calls":
        from loadtest.bench_ray_calls import main as ray_calls

        return ray_calls(args.seconds, args.json)
    if args.which == "append":
        from loadtest.bench_append import main as append_shapes

        return append_shapes(args.sizes, args.events, args.rounds, args.json)
    if args.which == "snapshot":
        from loadtest.bench_snapshot import main as snapshot_saves

        return snapshot_saves(args.bookings, args.rounds, args.json)
    if args.which == "consumers":
        from loadtest.bench_consumers import main as consumers

        return consumers()
    return 2
