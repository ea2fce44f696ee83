"""`rezerv up`: the whole system on one machine, each server embedded unless configured externally.

Order: PostgreSQL (then migrations), Valkey, the Kafka-compatible broker (then topics), a Ray
head, the background services on Ray, and the API. Then demo data and one readable block of
URLs. SIGINT or SIGTERM stops every child in reverse order and exits 0. Every failure is one
paragraph that names what to fix and the log to read, never a traceback.

Once ready, `rezerv up` supervises what it started. A child that dies is restarted, after a
delay growing with its recent failures (stack/supervision.py), with a log line each time:
- PostgreSQL and Valkey on the same data directory and port: clients reconnect by themselves
  (the shards' and the API's pools, the saga services'); requests meanwhile get 503 with
  Retry-After, or wait for a moment within their retry window;
- the broker (tansu keeps everything in memory, so it comes back empty): its topics are created
  again; the relay and the consumers start over on the new broker, and whatever the old one had
  not delivered is re-sent by the saga supervisor from PostgreSQL;
- the Ray head: Ray's actors die with it, so the shards and saga services are deployed again
  and the API (a Ray driver of the old cluster) is restarted with it;
- the API: restarted; it connects to Ray and the stores again on its own.
A child that dies more than REZERV_RESTART_LIMIT times within REZERV_RESTART_WINDOW_S stops the
whole stack with a message naming it and its log; `rezerv up` then exits 1. During start-up,
only a Ray head that fails while the services are placed is started again, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import psutil

from engine.config import ConfigError, Settings
from stack import leftovers
from stack.processes import (
    ManagedProcess,
    StartupError,
    on_every_start,
    pid_alive,
    process_table,
    require_free_port,
    running_as,
    tail,
    tcp_accepts,
)
from stack.prometheus import INSTALL_HINT, EmbeddedPrometheus, config_path, prometheus_binary, prometheus_config
from stack.ray_auth import TOKEN_FILE, use_token
from stack.secrets import private_secret
from stack.servers import RAY_ENV, EmbeddedKafka, EmbeddedPostgres, EmbeddedRay, EmbeddedValkey, ray_temp_dir
from stack.supervision import GiveUp, RestartPolicy, StepTimer


class ShutdownRequested(Exception):
    """SIGINT or SIGTERM arrived; unwinds start-up or the supervision loop."""


class Stoppable(Protocol):
    def stop(self) -> object: ...


class GaveUp(Exception):
    """A child died more often than the restart limit allows; the message says which and why."""


@dataclass
class Supervised:
    """A child `rezerv up` keeps alive: how to find its process and how to bring it back."""

    name: str
    process: Callable[[], ManagedProcess | None]
    restart: Callable[[], None]
    policy: RestartPolicy


@dataclass
class RunFiles:
    """The files of one `rezerv up` run inside the data directory."""

    data_dir: Path

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "up.pid"

    @property
    def processes_file(self) -> Path:
        return self.run_dir / "processes"  # what this run started (stack/leftovers.py)

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def secret_file(self) -> Path:
        return self.data_dir / "jwt_secret"

    @property
    def ray_token_file(self) -> Path:
        return self.data_dir / TOKEN_FILE

    @property
    def postgres_password_file(self) -> Path:
        return self.data_dir / "postgres_password"

    @property
    def valkey_password_file(self) -> Path:
        return self.data_dir / "valkey_password"

    @property
    def provider_secret_file(self) -> Path:
        return self.data_dir / "provider_secret"


def embedded_database_url(settings: Settings) -> str:
    """REZERV_DATABASE_URL, or else the URL of the embedded PostgreSQL of the data directory
    (whose password `rezerv up` keeps there); "" if neither exists."""
    if settings.database_url:
        return settings.database_url
    password_file = RunFiles(settings.data_dir).postgres_password_file
    if not password_file.exists():
        return ""
    password = password_file.read_text().strip()
    return f"postgresql://postgres:{password}@127.0.0.1:{settings.postgres_port}/rezerv"


def redacted(url: str) -> str:
    """`url` with its password replaced by ***, for printing."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def running_pid(files: RunFiles) -> int | None:
    """The pid of a live `rezerv up` for this data directory, if any.

    The pid file names the process and its start time: after `rezerv up` was killed (or the
    machine restarted) its pid may belong to any other process, which `rezerv down` must not
    signal and which must not keep the next `rezerv up` from starting. A file written before the
    start time was kept (the pid alone) is trusted only for a process that is a `rezerv up`."""
    try:
        fields = files.pid_file.read_text().split()
        pid = int(fields[0])
        started = float(fields[1]) if len(fields) > 1 else None
    except (OSError, ValueError, IndexError):
        return None
    if not pid_alive(pid):
        return None
    if started is not None:
        return pid if running_as(pid, started) else None
    try:
        return pid if _is_rezerv_up(psutil.Process(pid).cmdline()) else None
    except psutil.Error:
        return None


def _is_rezerv_up(argv: list[str]) -> bool:
    words = [Path(arg).name for arg in argv]
    return "up" in words and any(w in ("rezerv", "stack.cli") for w in words)


def pid_file_line() -> str:
    """This process as the pid file names it: pid and start time."""
    return f"{os.getpid()} {psutil.Process().create_time()}\n"


@dataclass
class Stack:
    settings: Settings
    out: Callable[[str], None] = print
    started: list[tuple[str, Stoppable]] = field(default_factory=list)
    api: ManagedProcess | None = None
    provider: ManagedProcess | None = None
    urls: dict[str, str] = field(default_factory=dict)
    supervised: list[Supervised] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)  # every metrics endpoint, once up
    prometheus: EmbeddedPrometheus | None = None
    _forget_listener: Callable[[], None] | None = None  # stops writing down started processes
    embedded_ray: bool = False

    @property
    def files(self) -> RunFiles:
        return RunFiles(self.settings.data_dir)

    # ---- start-up -------------------------------------------------------------------------
    def start(self) -> None:
        t0 = time.monotonic()
        # Children (servers, `rezerv deploy`, the API) may run in other directories.
        self.settings = self.settings.replace(data_dir=Path(os.path.abspath(self.settings.data_dir)))
        self._prepare_data_dir()
        s = self.settings
        self._check_ports()
        self._check_external()
        timeout = s.startup_timeout_s

        if not s.database_url:
            pg = EmbeddedPostgres(
                data_dir=s.data_dir / "pg",
                port=s.postgres_port,
                durable=True,
                password=private_secret(self.files.postgres_password_file),
                statements=s.pg_statements,
            )
            self._step("PostgreSQL", lambda: pg.start(timeout))
            self.started.append(("PostgreSQL", pg))
            self._supervise("PostgreSQL", lambda: pg.process, lambda: _restart(pg, timeout))
            if pg.cluster_dir is not None and pg.cluster_dir != pg.data_dir:
                self.out(f"  PostgreSQL runs as `nobody`, who cannot reach {pg.data_dir}: its cluster is in")
                self.out(f"  {pg.cluster_dir} (linked from {pg.data_dir})")
            if pg.relinked:
                self.out(f"  {pg.data_dir} had lost its link to its cluster, which knows this data directory's")
                self.out("  password: linked again, nothing else changed.")
            if pg.set_aside is not None:
                self.out(f"  An earlier {s.data_dir} (removed since, with its PostgreSQL password) had left its")
                self.out(f"  cluster there: a new one was made, and the old one moved to {pg.set_aside}")
                self.out("  (`rezerv clusters --remove-set-aside` deletes it when its data is not needed).")
            self.settings = s = s.replace(database_url=pg.url)
        self._step("migrations", lambda: asyncio.run(_migrate(s.database_url)))

        if not s.redis_url:
            valkey = EmbeddedValkey(
                data_dir=s.data_dir / "valkey",
                port=s.redis_port,
                durable=True,
                password=private_secret(self.files.valkey_password_file),
            )
            self._step("Valkey", lambda: valkey.start(timeout))
            self.started.append(("Valkey", valkey))
            self._supervise("Valkey", lambda: valkey.process, lambda: _restart(valkey, timeout))
            self.settings = s = s.replace(redis_url=valkey.url)

        if not s.kafka_bootstrap:
            kafka = EmbeddedKafka(log_dir=self.files.log_dir, port=s.kafka_port)
            self._step("Kafka broker", lambda: kafka.start(timeout))
            self.started.append(("Kafka broker", kafka))
            self._supervise("Kafka broker", lambda: kafka.process, lambda: self._restart_broker(kafka))
            self.settings = s = s.replace(kafka_bootstrap=kafka.bootstrap)
        self._step("Kafka topics", lambda: asyncio.run(_topics(s.kafka_bootstrap, s.kafka_topic_prefix)))

        dashboard = ""
        prometheus_bin = prometheus_binary() if s.metrics else None  # REZERV_METRICS=0: nothing to scrape
        prometheus_url = f"http://127.0.0.1:{s.prometheus_port}"
        ray_head: EmbeddedRay | None = None
        if not s.ray_address:
            use_token(self.files.ray_token_file)  # the Ray head, the API and this process share it
            os.environ.update(RAY_ENV)  # and its drivers (`rezerv deploy`, the API) look for it on 127.0.0.1
            ray_head = EmbeddedRay(
                data_dir=s.data_dir,
                port=s.ray_port,
                dashboard_port=s.dashboard_port,
                client_port=s.ray_client_port,
                num_cpus=s.ray_num_cpus,
                log_dir=self.files.log_dir,
            )
            if prometheus_bin:  # the Ray dashboard's metrics view reads Ray's metrics from it
                ray_head.extra_env["RAY_PROMETHEUS_HOST"] = prometheus_url
            self._step("Ray head", lambda: ray_head.start(timeout))
            self.started.append(("Ray head", ray_head))
            self._supervise("Ray head", lambda: ray_head.process, lambda: self._restart_ray(ray_head))
            self.settings = s = s.replace(ray_address=ray_head.address)
            self.embedded_ray = True
            dashboard = ray_head.dashboard_url

        self._step("background services", lambda: self._place_services(ray_head))
        if not s.provider_url:
            self._step("payment provider (local)", self._start_provider)
            self._supervise("payment provider", lambda: self.provider, self._start_provider)
        self._step("API", self._start_api)
        self._supervise("API", lambda: self.api, self._restart_api)
        if s.demo_data:
            self._step("demo data", self._load_demo)
        self.targets = self._wait_for_targets()
        self._write_prometheus_config()
        if prometheus_bin:
            prometheus = EmbeddedPrometheus(prometheus_bin, self._prometheus_dir, s.prometheus_port, self.files.log_dir)
            self._step("Prometheus", lambda: prometheus.start(timeout))
            self.started.append(("Prometheus", prometheus))
            self._supervise("Prometheus", lambda: prometheus.process, lambda: _restart(prometheus, timeout))
            self.prometheus = prometheus
        self.urls = {
            "API docs": f"http://{s.api_host}:{s.api_port}/docs",
            "Readiness": f"http://{s.api_host}:{s.api_port}/readyz",
            "Metrics": f"http://{s.api_host}:{s.api_port}/metrics",
            "Ray dashboard": dashboard or f"(external Ray at {s.ray_address})",
            "Prometheus": prometheus_url if prometheus_bin else "",
        }
        self._print_ready(time.monotonic() - t0)

    @property
    def _prometheus_dir(self) -> Path:
        return self.settings.data_dir / "prometheus"

    def _wait_for_targets(self, wait_s: float = 20.0) -> list[dict[str, Any]]:
        """Every metrics endpoint the API lists, once each shard and service has one (or after `wait_s`)."""
        s = self.settings
        from actors.services import ROLES

        expected = 1 + s.shard_count + len(ROLES) if s.metrics else 1  # the API, the shards, the saga services
        url = f"http://{s.api_host}:{s.api_port}/metrics/targets"
        deadline = time.monotonic() + wait_s
        targets: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            status, body = _get_json(url)
            if status == 200 and isinstance(body, list):
                targets = body
                if len(targets) >= expected:
                    break
            time.sleep(0.5)
        return targets

    def _write_prometheus_config(self) -> None:
        s = self.settings
        ray_file = ray_temp_dir(s.data_dir) / "prom_metrics_service_discovery.json" if self.embedded_ray else None
        self._prometheus_dir.mkdir(parents=True, exist_ok=True)
        config = prometheus_config(f"http://{s.api_host}:{s.api_port}", ray_file)
        config_path(self._prometheus_dir).write_text(config)

    def _step(self, what: str, action: Callable[[], object]) -> None:
        t = time.monotonic()
        self.out(f"  starting {what} ...")
        action()
        self.out(f"  {what} ready ({time.monotonic() - t:.1f} s)")

    def _prepare_data_dir(self) -> None:
        files = self.files
        try:
            files.log_dir.mkdir(parents=True, exist_ok=True)
            files.run_dir.mkdir(parents=True, exist_ok=True)
            probe = files.run_dir / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StartupError(
                f"The data directory {self.settings.data_dir} is not writable ({exc.strerror}). Set "
                f"REZERV_DATA_DIR to a directory you can write, or fix its permissions."
            ) from None
        other = running_pid(files)
        if other is not None and other != os.getpid():
            raise StartupError(
                f"Another `rezerv up` (pid {other}) is already running on the data directory "
                f"{self.settings.data_dir}. Stop it with `rezerv down` (or Ctrl-C in its terminal), or "
                f"use another REZERV_DATA_DIR."
            )
        self._stop_leftovers()
        files.pid_file.write_text(pid_file_line())
        leftovers.start_afresh(files.processes_file)
        self._forget_listener = on_every_start(functools.partial(leftovers.note, files.processes_file))
        if not self.settings.jwt_secret:
            self.settings = self.settings.replace(jwt_secret=private_secret(files.secret_file))
        if not self.settings.provider_secret:
            self.settings = self.settings.replace(provider_secret=private_secret(files.provider_secret_file))

    def _stop_leftovers(self) -> None:
        """Stop what an earlier `rezerv up` on this data directory left running when it was killed."""
        count = leftovers.stop_left_running(self.files.processes_file)
        if count:
            self.out(f"  stopped {count} processes an earlier `rezerv up` on this data directory left running")
            self.out("  (it was killed before it could stop them)")

    def _check_ports(self) -> None:
        s = self.settings
        wanted = [(s.api_port, "the API", "REZERV_API_PORT")]
        if not s.provider_url:
            wanted.append((s.provider_port, "the local payment provider", "REZERV_PROVIDER_PORT"))
        if not s.database_url:
            wanted.append((s.postgres_port, "the embedded PostgreSQL", "REZERV_POSTGRES_PORT"))
        if not s.redis_url:
            wanted.append((s.redis_port, "the embedded Valkey", "REZERV_REDIS_PORT"))
        if not s.kafka_bootstrap:
            wanted.append((s.kafka_port, "the embedded Kafka broker", "REZERV_KAFKA_PORT"))
        if not s.ray_address:
            wanted += [
                (s.ray_port, "the Ray head (GCS)", "REZERV_RAY_PORT"),
                (s.ray_client_port, "the Ray client server", "REZERV_RAY_CLIENT_PORT"),
                (s.dashboard_port, "the Ray dashboard", "REZERV_DASHBOARD_PORT"),
            ]
        if s.metrics and prometheus_binary():
            wanted.append((s.prometheus_port, "Prometheus", "REZERV_PROMETHEUS_PORT"))
        for port, what, setting in wanted:
            require_free_port(port, what, setting)

    def _check_external(self) -> None:
        """Configured external services must answer before anything is started."""
        s = self.settings
        if s.database_url and s.pg_statements:
            raise StartupError(
                "REZERV_PG_STATEMENTS loads pg_stat_statements into the embedded PostgreSQL; with "
                "REZERV_DATABASE_URL set, load it on that server (shared_preload_libraries) instead"
            )
        if s.database_url:
            _reachable("REZERV_DATABASE_URL", s.database_url, lambda: asyncio.run(_pg_ping(s.database_url)))
        if s.redis_url:
            _reachable("REZERV_REDIS_URL", s.redis_url, lambda: asyncio.run(_redis_ping(s.redis_url)))
        if s.kafka_bootstrap:
            _reachable(
                "REZERV_KAFKA_BOOTSTRAP",
                s.kafka_bootstrap,
                lambda: asyncio.run(_kafka_ping(s.kafka_bootstrap)),
            )
        if s.ray_address:
            host, _, port = s.ray_address.rpartition(":")
            if not port.isdigit() or not tcp_accepts(int(port), host or "127.0.0.1", timeout=2):
                raise StartupError(
                    f"REZERV_RAY_ADDRESS={s.ray_address} does not answer. Start that Ray cluster or "
                    f"unset REZERV_RAY_ADDRESS to let `rezerv up` start a local Ray head."
                )

    def _deploy_services(self, head: EmbeddedRay | None = None) -> None:
        """Shards and saga services, placed on Ray by a child `rezerv deploy`: joining Ray here would
        make this process a Ray driver, and Ray replaces its SIGTERM handler with its own.

        `head`, the embedded Ray head if there is one, is watched meanwhile: when it dies under the
        deploy, the wait ends at once (the driver itself would keep reconnecting for 60 s), and any
        failure says what became of the head and what its GCS logged last."""
        env = dict(os.environ)
        env.update(self.settings.to_env())
        log_path = self.files.log_dir / "deploy.log"
        with log_path.open("ab") as log:
            deploy = subprocess.Popen(
                [sys.executable, "-m", "stack.cli", "deploy"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        limit_s = self.settings.startup_timeout_s * 2
        deadline = time.monotonic() + limit_s
        what = ""
        try:
            while (code := deploy.poll()) is None:
                if head is not None and not head.alive():
                    what = "stopped: the Ray head died under it"
                    break
                if time.monotonic() > deadline:
                    what = f"stopped: not done within {limit_s:.0f} s"
                    break
                time.sleep(0.1)
        finally:  # a signal (ShutdownRequested) or a failure here leaves no deploy behind
            if deploy.poll() is None:
                deploy.kill()
                deploy.wait()
        if code == 0:
            return
        what = what or f"exit {code}"
        diagnosis = f"\n{head.diagnosis()}" if head is not None else ""
        raise StartupError(
            f"Placing the shards and saga services on Ray failed ({what}). Read its log: "
            f"{log_path}\n--- last lines ---\n{tail(log_path)}{diagnosis}"
        )

    def _place_services(self, head: EmbeddedRay | None) -> None:
        """The first deploy. An embedded Ray head that fails under it is started again, once, as the
        supervisor does after start-up: a GCS that died once must not cost the whole start-up. A
        second failure is reported with both."""
        try:
            self._deploy_services(head)
        except StartupError as first:
            if head is None:
                raise
            self.out("  placing the services failed; starting the Ray head again (once). What failed:")
            self.out("\n".join(f"    {line}" for line in str(first).splitlines()))
            head.stop()
            head.start(self.settings.startup_timeout_s)
            self._deploy_services(head)

    def _start_api(self, until: str = "/readyz") -> None:
        """Start uvicorn and wait until `until` answers 200 (/readyz at start-up: every dependency
        answers; /healthz on a restart, when one of them may be the reason for the restart)."""
        s = self.settings
        env = dict(os.environ)
        env.update(s.to_env())
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:create_app",
            "--factory",
            "--host",
            s.api_host,
            "--port",
            str(s.api_port),
            "--workers",
            str(s.api_workers),
            "--loop",
            "uvloop",
            "--http",
            "api.http_protocol:LimitedHttpToolsProtocol",  # httptools, with a limit on header size
            "--no-access-log",
            "--no-server-header",  # an answer need not name the server software (nor every client parse it)
            "--timeout-graceful-shutdown",
            "5",
        ]
        self.api = ManagedProcess(name="API (uvicorn)", argv=argv, log_path=self.files.log_dir / "api.log", env=env)
        self.started = [entry for entry in self.started if entry[0] != "API"]  # a restart replaces it
        self.started.append(("API", self.api))
        self.api.start()
        url = f"http://{s.api_host}:{s.api_port}{until}"
        last: dict[str, Any] = {}

        def ready() -> bool:
            nonlocal last
            status, last = _get_json(url)
            return status == 200

        try:
            self.api.wait_ready(ready, s.startup_timeout_s)
        except StartupError as exc:
            failing = ", ".join(last.get("failing", [])) or "unknown"
            raise StartupError(f"{exc}\nLast /readyz answer: failing = {failing}: {json.dumps(last)[:600]}") from None

    def _start_provider(self) -> None:
        """The local payment provider (stack/local_provider.py), a stand-in for a card processor
        that confirms top-ups with signed callbacks; its secret is in the data directory."""
        s = self.settings
        url = f"http://127.0.0.1:{s.provider_port}"
        env = dict(os.environ)
        env.update(s.replace(provider_url=url).to_env())
        if self.provider is not None:
            self.provider.stop()
        self.provider = ManagedProcess(
            "payment provider",
            [sys.executable, "-m", "stack.local_provider"],
            log_path=self.files.log_dir / "provider.log",
            env=env,
        )
        self.started = [entry for entry in self.started if entry[0] != "payment provider"]
        self.started.append(("payment provider", self.provider))
        self.provider.start()
        self.provider.wait_ready(lambda: tcp_accepts(s.provider_port), s.startup_timeout_s)
        self.settings = s.replace(provider_url=url)

    def _load_demo(self) -> None:
        from stack.demo import load_demo_data

        load_demo_data(self.settings)

    def _print_ready(self, elapsed: float) -> None:
        s = self.settings
        token_file = os.environ.get("RAY_AUTH_TOKEN_PATH", "")
        token_note = f"token in {token_file}" if token_file else "token authentication as configured for Ray"
        lines = [
            "",
            f"rezerv is ready ({elapsed:.1f} s). Press Ctrl-C to stop.",
            f"  API docs        {self.urls['API docs']}",
            f"  Readiness       {self.urls['Readiness']}",
            f"  Metrics         {self.urls['Metrics']}",
            f"  Ray dashboard   {self.urls['Ray dashboard']}  ({token_note})",
            self._prometheus_line(),
            "  Scrape targets  " + (self._target_lines() or "(none answered yet: see /metrics/targets)"),
            f"  Data directory  {s.data_dir.resolve()}  (logs in {self.files.log_dir.resolve()})",
            f"  PostgreSQL      {redacted(s.database_url)}",
            f"  Redis           {redacted(s.redis_url)}",
            f"  Kafka           {s.kafka_bootstrap}",
            f"  Payments        {s.provider_url}  (top-ups are paid at its checkout pages)",
            f"  Secrets         {self._secret_files()}",
            f"  Admin token     {admin_token(s)}",
            "",
        ]
        self.out("\n".join(lines))

    def _prometheus_line(self) -> str:
        config = config_path(self._prometheus_dir)
        if self.prometheus is not None:
            return f"  Prometheus      {self.urls['Prometheus']}  (scraping every target below; config {config})"
        if not self.settings.metrics:
            return "  Prometheus      not started: metrics are off (REZERV_METRICS=0)"
        return f"  Prometheus      not on the PATH: {INSTALL_HINT}; then `prometheus --config.file={config}`"

    def _target_lines(self) -> str:
        lines = []
        for target in self.targets:
            labels = target.get("labels", {})
            for address in target.get("targets", []):
                lines.append(f"{labels.get('process', '?'):<18} http://{address}/metrics")
        ray_file = ray_temp_dir(self.settings.data_dir) / "prom_metrics_service_discovery.json"
        if self.embedded_ray:
            lines.append(f"{'ray (agents)':<18} listed in {ray_file}")
        return "\n                  ".join(lines)

    def _secret_files(self) -> str:
        f = self.files
        files = (f.secret_file, f.postgres_password_file, f.valkey_password_file, f.provider_secret_file)
        kept = [p.name for p in files if p.exists()]
        return f"{', '.join(kept)} in {self.settings.data_dir.resolve()} (mode 600)" if kept else "none kept here"

    # ---- running and stopping -------------------------------------------------------------
    def _supervise(self, name: str, process: Callable[[], ManagedProcess | None], restart: Callable[[], None]) -> None:
        policy = RestartPolicy(self.settings.restart_limit, self.settings.restart_window_s)
        self.supervised.append(Supervised(name, process, restart, policy))

    def supervise(
        self, stop_check: Callable[[], bool] | None = None, period_s: float = 0.25, record_every_s: float = 2.0
    ) -> int:
        """Keep the children alive until a signal (ShutdownRequested) or `stop_check()` (returns 0),
        or until one dies too often (returns 1, after saying so).

        Liveness is checked every `period_s`; the descendants (what a stop must reach after their
        parent died) are recorded every `record_every_s`, from one walk of every process on the
        machine for all the children: recorded every 0.25 s, one walk per child kept 8% of a core
        busy on an idle stack, and every 2 s two thirds of this process's 1%."""
        recorded_at = 0.0
        while True:
            now = time.monotonic()
            table = None
            if now - recorded_at >= record_every_s:
                recorded_at = now
                table = process_table()  # one walk for every child's descendants
            for child in self.supervised:
                proc = child.process()
                if proc is None:
                    continue
                if table is not None:
                    proc.record_descendants(table)
                if not proc.alive():
                    try:
                        self._recover(child, proc)
                    except GaveUp as exc:
                        self.out(str(exc))
                        return 1
            if stop_check and stop_check():
                return 0
            time.sleep(period_s)

    def _recover(self, child: Supervised, proc: ManagedProcess) -> None:
        code = proc.popen.returncode if proc.popen else "?"
        s = self.settings
        decision = child.policy.failed(time.monotonic())
        if isinstance(decision, GiveUp):
            raise GaveUp(
                f"rezerv up: {child.name} stopped unexpectedly (exit code {code}), {decision.failures} times "
                f"within {s.restart_window_s:.0f} s (REZERV_RESTART_LIMIT={s.restart_limit}, "
                f"REZERV_RESTART_WINDOW_S={s.restart_window_s:.0f}). Giving up: stopping everything. Read "
                f"its log: {proc.log_path}\n--- last lines ---\n{tail(proc.log_path)}"
            )
        self.out(
            f"rezerv up: {child.name} stopped unexpectedly (exit code {code}); restarting it in "
            f"{decision.delay_s:.1f} s (restart {decision.attempt} of {s.restart_limit} allowed within "
            f"{s.restart_window_s:.0f} s). Its log: {proc.log_path}"
        )
        time.sleep(decision.delay_s)
        t0 = time.monotonic()
        try:
            child.restart()
        except (StartupError, OSError, subprocess.SubprocessError) as exc:
            # Counted as the next failure when the loop finds the process still down.
            self.out(f"rezerv up: restarting {child.name} failed: {exc}")
            return
        self.out(f"rezerv up: {child.name} is back ({time.monotonic() - t0:.1f} s)")

    def _restart_broker(self, kafka: EmbeddedKafka) -> None:
        _restart(kafka, self.settings.startup_timeout_s)
        # It came back empty; the relay and the consumers would create them too, at first use.
        asyncio.run(_topics(kafka.bootstrap, self.settings.kafka_topic_prefix))

    def _restart_ray(self, ray_head: EmbeddedRay) -> None:
        """A new Ray head has none of the old one's actors, and the API is a driver of the old one."""
        steps = StepTimer()
        ray_head.stop()
        steps.done("old head stopped")
        ray_head.start(self.settings.startup_timeout_s)
        steps.done("head started")
        self._deploy_services(ray_head)
        steps.done("services placed")
        if self.api is not None:
            self.api.stop()
        steps.done("old API stopped")
        self._start_api(until="/readyz")  # back means serving: joined the new cluster
        steps.done("API ready")
        self.out(f"rezerv up: Ray head restart: {steps}")

    def _restart_api(self) -> None:
        if self.api is not None:
            self.api.stop()
        self._start_api(until="/healthz")

    def stop(self) -> None:
        for name, thing in reversed(self.started):
            self.out(f"  stopping {name} ...")
            try:
                thing.stop()
            except Exception as exc:  # keep stopping the others
                self.out(f"  {name} did not stop cleanly: {exc}")
        self.started.clear()
        if self._forget_listener is not None:
            self._forget_listener()
            self._forget_listener = None
        with contextlib.suppress(OSError):
            if running_pid(self.files) == os.getpid():
                self.files.pid_file.unlink()


class _Restartable(Protocol):
    def start(self, timeout_s: float) -> None: ...

    def stop(self) -> None: ...


def _restart(server: _Restartable, timeout_s: float) -> None:
    """Stop whatever is left of the server (its children, when only its main process died), then
    start it again on the same data directory and port."""
    server.stop()
    server.start(timeout_s)


def admin_token(settings: Settings) -> str:
    from api.auth import issue_token

    return issue_token(settings, subject="admin", roles=("admin",), ttl_s=int(min(24 * 3600, settings.token_max_ttl_s)))


def _reachable(setting: str, value: str, probe: Callable[[], object]) -> None:
    try:
        probe()
    except Exception as exc:
        raise StartupError(
            f"{setting}={redacted(value)} is not reachable ({type(exc).__name__}: {exc}). Check the address and "
            f"that the service is running, or unset {setting} to let `rezerv up` start an embedded one."
        ) from None


async def _pg_ping(url: str) -> None:
    from engine.adapters.pg_pool import ping

    await ping(url)


async def _redis_ping(url: str) -> None:
    from engine.adapters.redis_client import ping

    await ping(url)


async def _kafka_ping(bootstrap: str) -> None:
    from engine.adapters.kafka_topics import ping

    await ping(bootstrap)


async def _migrate(url: str) -> None:
    from engine.adapters.pg_migrations import migrate_url

    await migrate_url(url)


async def _topics(bootstrap: str, prefix: str) -> None:
    from engine.adapters.kafka_topics import ensure_topics

    await ensure_topics(bootstrap, prefix=prefix)


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read() or b"{}")
        except ValueError:
            return err.code, {}
    except (OSError, ValueError, http.client.HTTPException):
        # HTTPException: something that is not an HTTP/1 server answers on the port (a Ray gRPC
        # server that took it first, say): not ready; the API's own exit then says why.
        return 0, {}


# Ctrl-C, `rezerv down`, and the terminal closing (SIGHUP, whose default would end `rezerv up` at
# once and leave every server, each in a session of its own, running).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def shutdown_signals() -> Iterator[None]:
    """Turn STOP_SIGNALS into ShutdownRequested, once; later signals are ignored while stopping."""
    fired = False

    def handler(signum: int, _frame: FrameType | None) -> None:
        nonlocal fired
        if fired:
            return
        fired = True
        raise ShutdownRequested(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _say(line: str, to_stderr: bool = False) -> None:
    """Print, unless the terminal has gone (a hang-up): stopping must go on without it."""
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr if to_stderr else sys.stdout, flush=True)


def run_up(settings: Settings | None = None) -> int:
    """The body of `rezerv up`; returns the process exit code."""
    try:
        settings = settings or Settings.from_env()
    except ConfigError as exc:
        print(f"rezerv up: bad configuration: {exc}", file=sys.stderr)
        return 2
    stack = Stack(settings, out=_say)
    _say(f"rezerv up: starting in {settings.data_dir.resolve()}")
    code = 0
    with shutdown_signals():
        try:
            stack.start()
            code = stack.supervise()
            if code:
                _say("rezerv up: a server failed too often; stopping.", to_stderr=True)
        except ShutdownRequested as sig:
            _say(f"rezerv up: {sig} received, stopping.")
            code = 0
        except (StartupError, ConfigError) as exc:
            _say(f"\nrezerv up: could not start.\n{exc}", to_stderr=True)
            code = 1
        finally:
            # Stopping ignores further signals: a second Ctrl-C must not leave orphans behind.
            for stop_signal in STOP_SIGNALS:
                signal.signal(stop_signal, signal.SIG_IGN)
            stack.stop()
    _say("rezerv up: stopped.")
    return code


def run_down(settings: Settings | None = None, timeout_s: float = 90.0) -> int:
    settings = settings or Settings.from_env()
    files = RunFiles(settings.data_dir)
    pid = running_pid(files)
    if pid is None:
        count = leftovers.stop_left_running(files.processes_file)
        left = f"; stopped {count} processes a killed one had left running" if count else ""
        print(f"rezerv down: no `rezerv up` is running on {settings.data_dir.resolve()}{left}.")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            print(f"rezerv down: stopped `rezerv up` (pid {pid}).")
            return 0
        time.sleep(0.2)
    print(f"rezerv down: `rezerv up` (pid {pid}) is still stopping after {timeout_s:.0f} s.", file=sys.stderr)
    return 1
