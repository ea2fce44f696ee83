"""Catalog benchmarks against a running rezerv (BENCHMARKS.md, "The catalog").

    python -m loadtest.catalog_bench wrk --api http://127.0.0.1:8000 --kind search --seconds 30
    python -m loadtest.catalog_bench locust --api http://127.0.0.1:8000 --kind cars --users 64
    python -m loadtest.catalog_bench paced --api http://127.0.0.1:8000 --kind search --users 64
    python -m loadtest.catalog_bench lag --rate 2000 --seconds 20

`wrk`: wrk (C, closed loop) at `--connections` over a fixed list of distinct catalog queries
(event searches or car availability windows), with CPU per process (API, PostgreSQL, Valkey,
wrk) sampled over the same window. Run it against an API with the cache and one without
(REZERV_CATALOG_CACHE_TTL_S=0) to compare.

`paced`: `--users` users with think time, as `locust` has them, timed by a lighter generator
(loadtest/paced.py: aiohttp on uvloop), whose own tail is a few milliseconds where Locust's is
tens on this machine; `--kind healthz` measures that floor on a no-op route.

`lag`: a flash sale through the engine (holds at `--rate` per second on one event, over Ray, as
the engine benchmark sends them) while the catalog's distance behind the log is sampled every
100 ms from PostgreSQL: the age of the oldest logged event it has not applied (0 when caught
up), which is exactly how stale its availability is.

Both read the stack's REZERV_* settings (REZERV_DATA_DIR, ports) like `rezerv token` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from engine.config import Settings
from loadtest.catalog_words import LOCATIONS, VENUES, WORDS
from loadtest.measure import CpuSampler, latency_summary, machine_description
from stack.arguments import COUNT, COUNT_OR_0, SECONDS_ABOVE_0

RESULTS = Path("loadtest/results")


# ---- the queries -----------------------------------------------------------------------------
def search_paths(count: int, seed: int = 7) -> list[str]:
    """Distinct event searches: words, some with filters and sorts."""
    rng = random.Random(seed)
    paths: set[str] = set()
    while len(paths) < count:
        query = f"q={rng.choice(WORDS)}"
        if rng.random() < 0.5:
            month = rng.randint(1, 11)
            query += f"&starts_from=2027-{month:02d}-01&starts_to=2027-{month + 1:02d}-01"
        if rng.random() < 0.4:
            query += f"&price_max={rng.choice([3000, 5000, 8000, 20000])}"
        if rng.random() < 0.2:
            query += "&venue=" + rng.choice(VENUES).replace(" ", "%20").replace(",", "%2C")
        if rng.random() < 0.3:
            query += f"&sort={rng.choice(['starts_at', 'price', '-price'])}"
        if rng.random() < 0.3:
            query += "&tickets_left=true"
        paths.add(f"/events?{query}&limit=20")
    return sorted(paths)


def car_paths(count: int, seed: int = 8) -> list[str]:
    """Distinct car searches: a location and a window of 2 to 10 days in the coming year."""
    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    paths: set[str] = set()
    while len(paths) < count:
        start = today + timedelta(days=rng.randint(3, 330))
        end = start + timedelta(days=rng.randint(2, 10))
        query = f"location={rng.choice(LOCATIONS)}&available_from={start}&available_to={end}"
        if rng.random() < 0.3:
            query += f"&price_max={rng.choice([6000, 8000, 10000])}"
        paths.add(f"/cars?{query}&limit=20")
    return sorted(paths)


def query_paths(kind: str, count: int) -> list[str]:
    """The catalog queries a run draws from: event searches or car windows."""
    return search_paths(count) if kind == "search" else car_paths(count)


def wrk_script(paths: list[str]) -> str:
    quoted = ",\n".join(json.dumps(p) for p in paths)
    return (
        f"local paths = {{\n{quoted}\n}}\n"
        "math.randomseed(os.time())\n"
        "request = function()\n"
        "  return wrk.format('GET', paths[math.random(#paths)])\n"
        "end\n"
    )


# ---- processes -------------------------------------------------------------------------------
def _pids(match: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if match in cmdline:
            found.append(proc.info["pid"])
    return found


def roles(settings: Settings, api_port: int) -> dict[str, list[int]]:
    """Root processes of each role (CpuSampler follows their children)."""
    return {
        "API": _pids(f"--port {api_port}"),
        "PostgreSQL": [p for p in _pids(f"-p {settings.postgres_port}") if "postgres" in psutil.Process(p).name()],
        "Valkey": [p for p in _pids(f":{settings.redis_port}") if "valkey" in psutil.Process(p).name()],
    }


def ray_roles(data_dir: Path) -> dict[str, list[int]]:
    """This stack's Ray workers (below the raylet started for `data_dir`), by actor class: other
    Ray clusters on the machine are not counted as ours."""
    out: dict[str, list[int]] = {"shards": [], "services": []}
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        if proc.info["name"] != "raylet" or str(data_dir) not in " ".join(proc.info["cmdline"] or []):
            continue
        for child in proc.children(recursive=True):
            try:
                name = child.name()
            except psutil.Error:
                continue
            if name.startswith("ray::ShardActor"):
                out["shards"].append(child.pid)
            elif name.startswith("ray::ServiceActor"):
                out["services"].append(child.pid)
    return out


_LATENCY = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(
    url: str, paths: list[str], connections: int, seconds: int, roles: dict[str, list[int]] | None = None
) -> dict[str, Any]:
    """wrk over `paths`; with `roles`, CPU per role (wrk included) over the run, read just
    before wrk ends (a process that has exited has no CPU times left to read)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(wrk_script(paths))
        script = f.name
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url]
    wrk = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    cpu: dict[str, float] = {}
    if roles is not None:
        sampler = CpuSampler({**roles, "wrk": [wrk.pid]})
        sampler.start()
        time.sleep(max(0.5, seconds - 0.5))
        cpu = sampler.stop()
    out, _ = wrk.communicate(timeout=seconds + 60)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    latency = {f"p{m[0]}_ms": round(float(m[1]) * _UNITS[m[2]], 2) for m in _LATENCY.findall(out)}
    return {
        "requests_per_s": float(rps[1]) if rps else 0.0,
        "requests": int(total[1]) if total else 0,
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "latency": latency,
        "cpu": cpu,
        "raw": out,
    }


def wrk_main(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    paths = query_paths(args.kind, args.distinct)
    port = int(args.api.rsplit(":", 1)[1])
    if args.warm:  # one pass over every query first, so a cached API starts warm
        run_wrk(args.api, paths, 8, max(2, len(paths) // 500))
    result = run_wrk(args.api, paths, args.connections, args.seconds, roles(settings, port))
    raw = result.pop("raw")
    summary = {
        "kind": args.kind,
        "api": args.api,
        "label": args.label,
        "connections": args.connections,
        "seconds": args.seconds,
        "distinct_queries": len(paths),
        "machine": machine_description(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        **result,
    }
    print(
        f"{args.label or args.api} {args.kind}: {result['requests_per_s']:,.0f} req/s, "
        f"latency {result['latency']}, non-2xx {result['non_2xx']}, CPU {result['cpu']}"
    )
    if args.verbose:
        print(raw)
    _save(f"catalog-wrk-{args.kind}-{args.label or port}", summary)
    return 0 if result["non_2xx"] == 0 else 1


def locust_main(args: argparse.Namespace) -> int:
    """Locust (loadtest/locust_catalog.py) with `--users` visitors, CPU per process alongside."""
    import csv
    import os
    import sys

    settings = Settings.from_env()
    port = int(args.api.rsplit(":", 1)[1])
    out = Path(tempfile.mkdtemp(prefix="catalog-locust-")) / "run"
    locust = Path(sys.executable).with_name("locust")
    env = {**os.environ, "CATALOG_MIX": args.kind, "CATALOG_WAIT": args.wait}
    users = str(args.users)
    argv = [str(locust), "-f", "loadtest/locust_catalog.py", "--headless", "-u", users, "-r", users,
            "-t", f"{args.seconds}s", "--host", args.api, "--csv", str(out), "--only-summary"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    spawning = min(5.0, args.seconds / 4)
    time.sleep(spawning)
    sampler = CpuSampler({**roles(settings, port), "Locust": [proc.pid]})
    sampler.start()
    time.sleep(max(0.5, args.seconds - spawning - 1))
    cpu = sampler.stop()  # before Locust exits: an exited process has no CPU times to read
    _, err = proc.communicate(timeout=args.seconds + 120)
    with Path(f"{out}_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    table = {
        name: {
            "requests": int(r["Request Count"]),
            "failures": int(r["Failure Count"]),
            "req_per_s": round(float(r["Requests/s"]), 1),
            "p50_ms": float(r["50%"]),
            "p95_ms": float(r["95%"]),
            "p99_ms": float(r["99%"]),
            "max_ms": round(float(r["Max Response Time"]), 1),
        }
        for name, r in rows.items()
    }
    summary = {
        "kind": args.kind,
        "api": args.api,
        "label": args.label,
        "users": args.users,
        "wait": args.wait,
        "seconds": args.seconds,
        "routes": table,
        "cpu": cpu,
        "machine": machine_description(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    total = table.get("Aggregated", {})
    print(f"{args.label or args.api} {args.kind} (Locust, {args.users} users, wait {args.wait}): {total}; CPU {cpu}")
    for name, r in table.items():
        if name != "Aggregated":
            print(f"    {name:34} {r}")
    if proc.returncode not in (0, 1):
        print(err[-2000:])
    _save(f"catalog-locust-{args.kind}-{args.label or port}", summary)
    return 0 if total.get("failures", 1) == 0 else 1


def paced_main(args: argparse.Namespace) -> int:
    """Paced users (loadtest/paced.py) over the same queries as `wrk`, CPU per process alongside."""
    import os
    import threading

    from loadtest import paced

    settings = Settings.from_env()
    port = int(args.api.rsplit(":", 1)[1])
    paths = ["/healthz"] if args.kind == "healthz" else query_paths(args.kind, args.distinct)
    low, high = (float(x) for x in args.wait.split(","))
    sampler = CpuSampler({**roles(settings, port), "generator": [os.getpid()]})
    # CPU over the middle of the run, sampled from a thread: the generator's loop is busy timing
    timer = threading.Timer(min(5.0, args.seconds / 4), sampler.start)
    timer.start()
    result = paced.run(args.api, paths, args.users, args.seconds, (low, high))
    timer.join()  # it fired a quarter of the way in at the latest
    cpu = sampler.stop()
    summary = {
        "kind": args.kind,
        "api": args.api,
        "label": args.label,
        "generator": "paced (aiohttp on uvloop)",
        "users": args.users,
        "wait": args.wait,
        "seconds": args.seconds,
        "distinct_queries": len(paths),
        **result.summary(),
        "cpu": cpu,
        "machine": machine_description(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(
        f"{args.label or args.api} {args.kind} (paced, {args.users} users, wait {args.wait}): "
        + ", ".join(f"{k} {summary[k]}" for k in ("requests_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms"))
        + f"; statuses {summary['statuses']}, errors {summary['errors']}; CPU {cpu}"
    )
    _save(f"catalog-paced-{args.kind}-{args.label or port}", summary)
    ok = not result.errors and set(result.statuses) == {200}
    return 0 if ok else 1


# ---- the flash sale and the catalog's distance behind the log --------------------------------
async def lag_main_async(args: argparse.Namespace) -> int:
    import asyncpg

    from engine.adapters.pg_rebuild import behind_seconds
    from engine.domain.commands import CreateEvent, HoldTickets, TierSpec
    from engine.domain.errors import RezervError
    from engine.log import START, LogCheckpoint
    from engine.projections.bookings import PROJECTION_NAME as BOOKINGS
    from engine.projections.catalog import PROJECTION_NAME
    from loadtest.catalog_seed import connect

    settings = Settings.from_env()
    if not settings.data_dir.is_absolute():
        settings = settings.replace(data_dir=Path.cwd() / settings.data_dir)
    url = settings.database_url or f"postgresql://postgres@127.0.0.1:{settings.postgres_port}/rezerv"
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    client = connect(settings)
    event_id = f"flash-{uuid.uuid4().hex[:6]}"
    await client.execute(CreateEvent(event_id, "Flash Sale", "Arena, Oslo", "2027-09-01T20:00:00+02:00",
                                     (TierSpec("std", 100, 10**8),), 0))  # fmt: skip
    samples: list[float] = []
    bookings_samples: list[float] = []  # the bookings projection, in the same service, for comparison
    stop = asyncio.Event()

    async def behind(name: str = PROJECTION_NAME) -> float:
        row = await pool.fetchrow("SELECT txid, position FROM log_checkpoints WHERE name = $1", name)
        return await behind_seconds(pool, LogCheckpoint(int(row["txid"]), int(row["position"])) if row else START)

    async def sample() -> None:
        while not stop.is_set():
            samples.append(await behind())
            bookings_samples.append(await behind(BOOKINGS))
            await asyncio.sleep(0.1)

    granted = refused = 0
    latencies: list[float] = []

    async def one(i: int) -> None:
        nonlocal granted, refused
        t = time.perf_counter()
        hold = HoldTickets(event_id, f"h{i}", f"fan{i % 5000}", (("std", 1),), args.hold_ttl * 1000)
        reply = await client.request(hold)
        latencies.append(time.perf_counter() - t)
        if isinstance(reply, RezervError):
            refused += 1
        else:
            granted += 1

    sampler_task = asyncio.get_running_loop().create_task(sample())
    cpu = CpuSampler(
        {
            **ray_roles(settings.data_dir),
            "PostgreSQL": [p for p in _pids(f"-p {settings.postgres_port}") if "postgres" in psutil.Process(p).name()],
            "driver": [psutil.Process().pid],
        }
    )
    cpu.start()
    started = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    sent = 0
    tick = 0.01
    while (elapsed := time.perf_counter() - started) < args.seconds:
        due = int(elapsed * args.rate) if args.rate > 0 else sent + 2_000
        while sent < due:
            tasks.append(asyncio.get_running_loop().create_task(one(sent)))
            sent += 1
        if args.rate <= 0:
            await asyncio.gather(*tasks)
            tasks.clear()
        await asyncio.sleep(tick)
    await asyncio.gather(*tasks)
    window = time.perf_counter() - started
    usage = cpu.stop()
    during = list(samples)
    drained_at = time.perf_counter()
    while True:
        if await behind() == 0:
            break
        await asyncio.sleep(0.05)
    drain_s = time.perf_counter() - drained_at
    held = await pool.fetchval(
        "SELECT (tiers->0->>'held')::bigint + (tiers->0->>'confirmed')::bigint FROM catalog_events WHERE event_id = $1",
        event_id,
    )
    # The sale's holds end (released by the saga: the fans have no money; or expired) as fast as
    # they came: another wave for the catalog, and one that must not fall on the next run.
    wave_start = len(samples)
    deadline = time.perf_counter() + args.hold_ttl + 120
    while time.perf_counter() < deadline:
        left = await pool.fetchval(
            "SELECT (tiers->0->>'held')::bigint FROM catalog_events WHERE event_id = $1", event_id
        )
        if left == 0 and await behind() == 0:
            break
        await asyncio.sleep(0.5)
    ending = sorted(samples[wave_start:])
    stop.set()
    await sampler_task
    await pool.close()
    ordered = sorted(during)
    others = sorted(bookings_samples[: len(during)])
    summary = {
        "event_id": event_id,
        "target_rate": args.rate,
        "seconds": round(window, 1),
        "holds_granted": granted,
        "holds_refused": refused,
        "holds_per_s": round(granted / window),
        "hold_latency": latency_summary(latencies),
        "catalog_behind_s": {
            "samples": len(ordered),
            "p50": round(ordered[len(ordered) // 2], 3) if ordered else 0,
            "p99": round(ordered[int(len(ordered) * 0.99)], 3) if ordered else 0,
            "max": round(ordered[-1], 3) if ordered else 0,
        },
        "bookings_behind_s": {
            "p50": round(others[len(others) // 2], 3) if others else 0,
            "p99": round(others[int(len(others) * 0.99)], 3) if others else 0,
            "max": round(others[-1], 3) if others else 0,
        },
        "drain_after_load_s": round(drain_s, 2),
        "catalog_behind_s_while_the_holds_end": {
            "samples": len(ending),
            "p50": round(ending[len(ending) // 2], 3) if ending else 0,
            "p99": round(ending[int(len(ending) * 0.99)], 3) if ending else 0,
            "max": round(ending[-1], 3) if ending else 0,
        },
        "catalog_tickets_taken": held,
        "cpu": usage,
        "machine": machine_description(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(summary, indent=1))
    _save(f"catalog-lag-{args.rate}", summary)
    return 0


def _save(name: str, summary: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"{name}-{stamp}.json").write_text(json.dumps(summary, indent=1))


def _users_parser(sub: Any, name: str, kinds: list[str], wait_note: str = "") -> argparse.ArgumentParser:
    """A subcommand of users with think time (`locust`, `paced`): the options they share."""
    parser: argparse.ArgumentParser = sub.add_parser(name)
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--kind", choices=kinds, default="search")
    parser.add_argument("--users", type=COUNT, default=64)
    think = f"think time between a user's requests, 'low,high' s{wait_note}"
    parser.add_argument("--wait", default="0.5,1.5", help=think)
    parser.add_argument("--seconds", type=COUNT, default=60)
    parser.add_argument("--label", default="")
    return parser


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="which", required=True)
    wrk = sub.add_parser("wrk")
    wrk.add_argument("--api", default="http://127.0.0.1:8000")
    wrk.add_argument("--kind", choices=["search", "cars"], default="search")
    wrk.add_argument("--connections", type=COUNT, default=64)
    wrk.add_argument("--seconds", type=COUNT, default=30)
    wrk.add_argument("--distinct", type=COUNT, default=500, help="distinct queries the load draws from")
    wrk.add_argument("--warm", action="store_true", help="touch every query once before measuring")
    wrk.add_argument("--label", default="")
    wrk.add_argument("--verbose", action="store_true")
    _users_parser(sub, "locust", ["search", "cars", "mixed"], "; 0: none")
    pac = _users_parser(sub, "paced", ["search", "cars", "healthz"])
    pac.add_argument("--distinct", type=COUNT, default=500, help="distinct queries the load draws from")
    lag = sub.add_parser("lag")
    lag.add_argument("--rate", type=COUNT_OR_0, default=2000, help="holds per second; 0: as fast as it goes")
    lag.add_argument("--seconds", type=SECONDS_ABOVE_0, default=20.0)
    lag.add_argument("--hold-ttl", type=COUNT, default=60, help="seconds; the run waits until every hold has ended")
    args = parser.parse_args()
    if args.which == "wrk":
        return wrk_main(args)
    if args.which == "locust":
        return locust_main(args)
    if args.which == "paced":
        return paced_main(args)
    return asyncio.run(lag_main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
