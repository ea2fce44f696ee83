"""The systems a load test runs against, each able to start, say when it is quiet, count a
window's confirmations from its own store, audit itself, and stop.

- `RezervTarget`: a `rezerv up` started for the run in a fresh temporary data directory on free
  ports (so it never collides with a running `make up`; every other setting is `rezerv up`'s
  default, or the REZERV_* variables of the environment), or an already running one given by
  its base URL, database URL and JWT secret.
- `BaselineTarget`: one lock-based baseline app (loadtest/baselines/) under uvicorn with the same
  worker count as rezerv's API, on `BaselineServers`: PostgreSQL (fsync and synchronous_commit
  on, the class `rezerv up` uses, so the same settings) and Valkey, started alone. rezerv is
  stopped before the baselines start, so none of its processes (Ray, the saga, the broker) take
  CPU while a baseline is measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from engine.adapters.pg_bookings import projection_lag
from engine.config import Settings
from loadtest.audit_rules import ClientHold, Verdict
from loadtest.pg_statements import StatementCounters
from loadtest.population import Population
from stack.processes import ManagedProcess, StartupError, free_port, tail
from stack.up import embedded_database_url

PORT_SETTINGS = (
    "REZERV_API_PORT",
    "REZERV_POSTGRES_PORT",
    "REZERV_REDIS_PORT",
    "REZERV_KAFKA_PORT",
    "REZERV_RAY_PORT",
    "REZERV_RAY_CLIENT_PORT",
    "REZERV_DASHBOARD_PORT",
    "REZERV_PROVIDER_PORT",
    "REZERV_PROMETHEUS_PORT",
)
READY_LINE = "rezerv is ready"


@dataclass(frozen=True)
class Quiet:
    """How the wait for a quiet system ended: what was still in flight or HELD, and how long it took."""

    in_flight: int
    held: int
    waited_s: float


@dataclass(frozen=True)
class WindowFigures:
    confirmed: int  # bookings confirmed inside the window (by the store's own timestamps)
    held_at_end: int  # bookings HELD at the end of the window
    drain_s: float  # from the end of the window until the last of those was confirmed or ended
    confirm_p50_ms: float | None = None  # hold -> confirmed, for the bookings held in the window
    confirm_p99_ms: float | None = None
    released: int = 0  # bookings released inside the window (a payment that failed, with --unfunded)


class Target(Protocol):
    @property
    def name(self) -> str: ...

    base_url: str
    jwt_secret: str

    def start(self) -> None: ...

    def stop(self, logs: Path | None = None) -> None:
        """Stop everything `start` started (also when it only got halfway). With `logs`, first copy
        the target's logs there: they live in its temporary folder, which goes with it."""

    def cpu_roots(self) -> list[int]: ...

    async def quiet(self, population: Population, timeout_s: float) -> Quiet: ...

    async def window(self, population: Population, start: float, end: float) -> WindowFigures: ...

    async def statement_counters(self) -> list[StatementCounters] | None:
        """pg_stat_statements' counters in the target's database; None without it (the default)."""

    async def audit(self, population: Population, clients: Sequence[ClientHold]) -> Verdict: ...


def keep_logs(directory: Path, files: Sequence[Path]) -> None:
    """Copy the log files that exist into `directory` (a stall found in the figures afterwards can
    then be looked up in the servers' own logs)."""
    directory.mkdir(parents=True, exist_ok=True)
    for file in files:
        if file.is_file():
            shutil.copyfile(file, directory / file.name)


RAY_SESSION_LOGS = "ray-session"  # under a target's `logs/`: the Ray session's own log folder


def keep_ray_session_logs(directory: Path, data_dir: Path) -> None:
    """Copy the log files of the last Ray session of `data_dir` into `directory`/ray-session: the
    shards' and the saga services' own logging is there (`worker-*.err`, one file per actor
    process), and so are Ray's GCS and raylet logs; without them a failed payment or a restarted
    shard in a run's figures could not be looked up once the target's folder is gone."""
    from stack.servers import ray_temp_dir

    session = ray_temp_dir(data_dir) / "session_latest" / "logs"
    if session.is_dir():
        keep_logs(directory / RAY_SESSION_LOGS, sorted(session.iterdir()))


# ---- HTTP helpers (the orchestrator's own few requests; the load is Locust's) ------------------
def get_json(url: str, token: str = "", timeout: float = 10.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            return response.status, json.loads(body) if body[:1] in (b"{", b"[") else body.decode()
    except urllib.error.HTTPError as err:
        return err.code, {}
    except OSError:
        return 0, {}


def in_flight(base_url: str) -> int:
    """Requests being handled by the API, from its /metrics (the scrape itself excluded)."""
    status, text = get_json(base_url + "/metrics")
    if status != 200 or not isinstance(text, str):
        return -1
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.endswith("_http_requests_in_flight"):
            return max(0, round(float(value)) - 1)
    return -1


async def wait_for_no_requests(base_url: str, deadline: float) -> int:
    """Wait until the API handles no request (uvicorn finishes handlers whose client hung up)."""
    while True:
        count = await asyncio.to_thread(in_flight, base_url)
        if count == 0 or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.2)


def reported_balances(population: Population, threads: int = 16) -> dict[str, int]:
    base, token = population.base_url, population.admin_token

    def one(customer: str) -> tuple[str, int]:
        status, body = get_json(f"{base}/wallets/{customer}", token)
        return customer, int(body["balance"]) if status == 200 else -1

    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(one, [c.customer_id for c in population.customers]))


def reported_tiers(population: Population) -> dict[tuple[str, str], tuple[int, int, int]]:
    out = {}
    for event in population.events:
        status, body = get_json(f"{population.base_url}/events/{event['event_id']}", population.admin_token)
        if status == 200:
            for tier in body["tiers"]:
                out[(f"event/{event['event_id']}", tier["name"])] = (tier["quantity"], tier["held"], tier["confirmed"])
    return out


_STATEMENTS = """
SELECT queryid, query, calls, total_plan_time + total_exec_time AS time_ms, rows
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND queryid IS NOT NULL
"""


async def read_statement_counters(pool: asyncpg.Pool) -> list[StatementCounters] | None:
    """Every statement's counters in the pool's database (loadtest/pg_statements.py), or None when
    it has no pg_stat_statements: the extension not made there, or its library not loaded."""
    if await pool.fetchval("SELECT to_regclass('pg_stat_statements')") is None:
        return None
    try:
        rows = await pool.fetch(_STATEMENTS)
    except asyncpg.ObjectNotInPrerequisiteStateError:  # the view exists, the library is not loaded
        return None
    return [StatementCounters(r["queryid"], r["query"], r["calls"], r["time_ms"], r["rows"]) for r in rows]


class _LazyPool:
    """The orchestrator's own small pool on a target's database, opened on first use."""

    _pool: asyncpg.Pool | None = None

    async def _open(self, url: str, **settings: Any) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(url, min_size=1, max_size=2, **settings)
        return self._pool

    async def pool(self) -> asyncpg.Pool:
        raise NotImplementedError

    async def statement_counters(self) -> list[StatementCounters] | None:
        return await read_statement_counters(await self.pool())

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


# ---- rezerv ----------------------------------------------------------------------------------
_HELD = "SELECT count(*) FROM bookings WHERE status = 'HELD' AND booking_stream = ANY($1::text[])"

_WINDOW = """
WITH b AS (
    SELECT held_at, confirmed_at, released_at, coalesce(confirmed_at, released_at, expired_at) AS left_held
      FROM bookings WHERE booking_stream = ANY($1::text[])
)
SELECT count(*) FILTER (WHERE confirmed_at BETWEEN $2 AND $3) AS confirmed,
       count(*) FILTER (WHERE released_at BETWEEN $2 AND $3) AS released,
       count(*) FILTER (WHERE held_at <= $3 AND (left_held IS NULL OR left_held > $3)) AS held_at_end,
       max(left_held) FILTER (WHERE held_at <= $3 AND left_held > $3) AS last_exit,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY confirmed_at - held_at)
           FILTER (WHERE held_at BETWEEN $2 AND $3 AND confirmed_at IS NOT NULL) AS confirm_p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY confirmed_at - held_at)
           FILTER (WHERE held_at BETWEEN $2 AND $3 AND confirmed_at IS NOT NULL) AS confirm_p99
  FROM b
"""


@dataclass
class RezervTarget(_LazyPool):
    base_url: str = ""
    database_url: str = ""
    jwt_secret: str = ""
    stack_pid: int | None = None  # an external stack's `rezerv up`, for CPU per process
    startup_timeout_s: float = 240.0
    name: str = "rezerv"
    root: Path | None = None
    up: ManagedProcess | None = None

    def start(self) -> None:
        if self.base_url:
            if not self.database_url or not self.jwt_secret:
                raise StartupError("a given --base-url needs --database-url and --jwt-secret (or --data-dir) to audit")
            return
        self.root = Path(tempfile.mkdtemp(prefix="rezerv-loadtest-"))
        self.root.chmod(0o755)  # PostgreSQL runs as `nobody` when we are root
        data = self.root / "data"
        ports = {name: free_port() for name in PORT_SETTINGS}
        env = {k: v for k, v in os.environ.items() if k not in PORT_SETTINGS and k != "REZERV_DATA_DIR"}
        env |= {name: str(port) for name, port in ports.items()} | {"REZERV_DATA_DIR": str(data)}
        up = ManagedProcess(
            "rezerv up",
            [sys.executable, "-m", "stack.cli", "up"],
            log_path=self.root / "up.log",
            env=env,
            stop_signal=signal.SIGINT,
            stop_timeout_s=90.0,
        )
        up.start()
        self.up = up  # only now: a `stop` from another thread either sees it running or not at all
        log = self.root / "up.log"
        up.wait_ready(lambda: READY_LINE in log.read_text(errors="replace"), self.startup_timeout_s)
        self.base_url = f"http://127.0.0.1:{ports['REZERV_API_PORT']}"
        self.jwt_secret = (data / "jwt_secret").read_text().strip()
        # The embedded PostgreSQL wants the password `rezerv up` keeps in the data directory.
        self.database_url = os.environ.get("REZERV_DATABASE_URL") or embedded_database_url(
            Settings(data_dir=data, postgres_port=ports["REZERV_POSTGRES_PORT"])
        )

    def stop(self, logs: Path | None = None) -> None:
        if self.up is not None:
            self.up.stop()
            self.up = None
        if self.root is not None:
            from stack.servers import remove_data_dir

            if logs is not None:  # `rezerv up`'s own log, then every server's and service's
                keep_logs(logs, [self.root / "up.log", *sorted((self.root / "data" / "logs").glob("*.log"))])
                keep_ray_session_logs(logs, self.root / "data")
            remove_data_dir(self.root / "data")
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def log_tail(self) -> str:
        return tail(self.root / "up.log", 20) if self.root else ""

    def cpu_roots(self) -> list[int]:
        pid = self.up.pid if self.up else self.stack_pid
        return [pid] if pid else []

    async def pool(self) -> asyncpg.Pool:
        return await self._open(self.database_url)

    async def quiet(self, population: Population, timeout_s: float) -> Quiet:
        """No request in flight, the projection caught up, and none of the run's bookings HELD."""
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        requests = await wait_for_no_requests(self.base_url, deadline)
        pool = await self.pool()
        streams = sorted(population.entities)
        while True:
            lag = await projection_lag(pool)
            held = int(await pool.fetchval(_HELD, streams))
            if (lag == 0 and held == 0) or time.monotonic() > deadline:
                return Quiet(requests, held + lag, time.monotonic() - t0)
            await asyncio.sleep(0.25)

    async def window(self, population: Population, start: float, end: float) -> WindowFigures:
        pool = await self.pool()
        start_ms, end_ms = int(start * 1000), int(end * 1000)
        row = await pool.fetchrow(_WINDOW, sorted(population.entities), start_ms, end_ms)
        last = row["last_exit"]
        drain = max(0.0, (last - end_ms) / 1000) if row["held_at_end"] and last is not None else 0.0
        p50, p99 = row["confirm_p50"], row["confirm_p99"]
        return WindowFigures(
            int(row["confirmed"]),
            int(row["held_at_end"]),
            drain,
            None if p50 is None else round(float(p50), 1),
            None if p99 is None else round(float(p99), 1),
            int(row["released"]),
        )

    async def audit(self, population: Population, clients: Sequence[ClientHold]) -> Verdict:
        from loadtest.store_audit import audit_store, wait_for_projection

        pool = await self.pool()
        await wait_for_projection(pool)
        balances = await asyncio.to_thread(reported_balances, population)
        tiers = await asyncio.to_thread(reported_tiers, population)
        return await audit_store(pool, clients, population.entities, balances, tiers)


# ---- the baselines ---------------------------------------------------------------------------
@dataclass
class BaselineServers:
    """PostgreSQL (durable: fsync and synchronous_commit on) and Valkey, alone, for the baselines."""

    root: Path | None = None
    pg: Any = None
    valkey: Any = None

    def start(self) -> None:
        from stack.servers import EmbeddedPostgres, EmbeddedValkey

        self.root = Path(tempfile.mkdtemp(prefix="rezerv-baselines-"))
        self.root.chmod(0o755)
        # REZERV_PG_STATEMENTS counts the baselines' statements too, as it does rezerv's.
        statements = Settings.from_env().pg_statements
        self.pg = EmbeddedPostgres(self.root / "pg", free_port(), durable=True, statements=statements)
        self.pg.start()
        self.valkey = EmbeddedValkey(self.root / "valkey", free_port(), durable=True)
        self.valkey.start()

    def database_url(self, name: str) -> str:
        async def create() -> None:
            conn = await asyncpg.connect(self.pg.url.rsplit("/", 1)[0] + "/postgres")
            try:
                if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                    await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
            if self.pg.statements:
                await self.pg.enable_statements(name)

        asyncio.run(create())
        return str(self.pg.url.rsplit("/", 1)[0] + "/" + name)

    def pids(self) -> list[int]:
        return [p.process.pid for p in (self.pg, self.valkey) if p is not None and p.process and p.process.pid]

    def stop(self, logs: Path | None = None) -> None:
        for server in (self.valkey, self.pg):
            if server is not None:
                server.stop()
        if self.root is not None:
            from stack.servers import remove_data_dir

            if logs is not None:
                keep_logs(logs, [s.log_path for s in (self.pg, self.valkey) if s is not None])
            remove_data_dir(self.root)  # with its PostgreSQL cluster, placed elsewhere when root is private


@dataclass
class BaselineTarget(_LazyPool):
    strategy: str
    servers: BaselineServers
    jwt_secret: str
    workers: int = field(default_factory=lambda: Settings.from_env().api_workers)
    base_url: str = ""
    app: ManagedProcess | None = None
    _database_url: str = ""

    @property
    def name(self) -> str:
        return self.strategy

    def start(self) -> None:
        assert self.servers.root is not None
        self._database_url = self.servers.database_url("baseline_" + self.strategy.replace("-", "_"))
        port = free_port()
        env = dict(os.environ) | {
            "BASELINE_STRATEGY": self.strategy,
            "BASELINE_DATABASE_URL": self._database_url,
            "BASELINE_REDIS_URL": self.servers.valkey.url,
            "BASELINE_JWT_SECRET": self.jwt_secret,
        }
        argv = [sys.executable, "-m", "uvicorn", "loadtest.baselines.app:create_app", "--factory"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(self.workers)]
        # Without a server header, as rezerv's API: the generator parses heads of the same shape.
        argv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--no-server-header"]
        self.app = ManagedProcess(f"baseline {self.strategy}", argv, self.servers.root / f"{self.strategy}.log", env)
        self.app.start()
        self.base_url = f"http://127.0.0.1:{port}"
        self.app.wait_ready(lambda: get_json(self.base_url + "/readyz")[0] == 200, 60.0)

    def stop(self, logs: Path | None = None) -> None:
        if self.app is not None:
            self.app.stop()
            if logs is not None:
                keep_logs(logs, [self.app.log_path])
            self.app = None

    def cpu_roots(self) -> list[int]:
        return ([self.app.pid] if self.app and self.app.pid else []) + self.servers.pids()

    async def pool(self) -> asyncpg.Pool:
        from loadtest.baselines.app import SERVER_SETTINGS

        return await self._open(self._database_url, server_settings=SERVER_SETTINGS)

    async def quiet(self, population: Population, timeout_s: float) -> Quiet:
        t0 = time.monotonic()
        requests = await wait_for_no_requests(self.base_url, t0 + timeout_s)
        return Quiet(requests, 0, time.monotonic() - t0)

    async def window(self, population: Population, start: float, end: float) -> WindowFigures:
        pool = await self.pool()
        events = [e["event_id"] for e in population.events]
        confirmed = await pool.fetchval(
            "SELECT count(*) FROM bookings WHERE event_id = ANY($1::text[]) AND created_at BETWEEN $2 AND $3",
            events,
            int(start * 1000),
            int(end * 1000),
        )
        return WindowFigures(int(confirmed), 0, 0.0)

    async def audit(self, population: Population, clients: Sequence[ClientHold]) -> Verdict:
        from loadtest.baselines.audit import audit_baseline

        return await audit_baseline(await self.pool(), clients, population.entities, self.name)
