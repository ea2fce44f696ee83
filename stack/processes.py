"""Child processes that are started, awaited and stopped without leaving orphans.

Every server rezerv starts goes through `ManagedProcess`: its output goes to a log file (named
in every error), readiness is a predicate polled until a deadline, and stopping sends the
polite signal, waits, then SIGKILLs the process and every descendant recorded while it ran.
Descendants are recorded because Ray's workers call setsid() and survive a process-group kill.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil


class StartupError(RuntimeError):
    """A server could not be started; the message says what to fix and which log to read."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def default_ports() -> frozenset[int]:
    """The ports `rezerv up` uses when nothing is configured (several lie in the kernel's range of
    ports it hands out for port 0)."""
    from dataclasses import fields

    from engine.config import Settings

    return frozenset(
        int(f.default) for f in fields(Settings) if f.name.endswith("_port") and isinstance(f.default, int)
    )


FREE_PORTS_FROM = 20_000
"""`free_port` draws from here up to the kernel's own range: above Ray's default worker ports
(10002-19999, stack/servers.py), below every port the kernel hands out by itself."""

_handed_out: set[int] = set()
_draw = random.Random()


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for the ports it picks itself: a bind to port 0, an outgoing connection."""
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def free_port() -> int:
    """A port free now (used by tests and load tests; races are retried by the caller).

    Never one of `default_ports()`: a test's server there would keep `rezerv up` with its defaults
    (and the test of the README's quick start) from starting while it runs. Never one this process
    handed out before, which may not be bound yet. And never one the kernel may pick by itself:
    Ray's head binds several ports the kernel picks (its node manager, object manager, metrics and
    agents' ports), as does every outgoing connection, so a port from that range could be taken
    between this choice and the server's bind (once, the API's port answered with a Ray gRPC
    server's HTTP/2 frames). So ports are drawn between Ray's worker ports and the kernel's range,
    or from the kernel when that gap is too small."""
    reserved = default_ports() | _handed_out
    low, high = FREE_PORTS_FROM, ephemeral_ports()[0] - 1
    if high - low < 1_000:
        return _kernel_port(reserved)
    for _ in range(1_000):
        port = _draw.randrange(low, high + 1)
        if port not in reserved and port_is_free(port):
            _handed_out.add(port)
            return port
    raise StartupError(f"No free port found between {low} and {high} on 127.0.0.1")


def _kernel_port(reserved: frozenset[int] | set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in reserved:
            _handed_out.add(port)
            return port


def require_free_port(port: int, what: str, setting: str, patience_s: float = 5.0) -> None:
    """Refuse a port another program holds; wait up to `patience_s` first, because the default
    ports lie in the kernel's range for outgoing connections, and a short-lived connection that
    happens to use one as its local port makes it unavailable for a moment."""
    deadline = time.monotonic() + patience_s
    while not port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not port_is_free(port):
        raise StartupError(
            f"Port {port} on 127.0.0.1, needed by {what}, is already in use. Stop the program "
            f"holding it (`ss -ltnp 'sport = :{port}'` shows which) or choose another port with "
            f"{setting}=<port>."
        )


def tcp_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


SAME_PROCESS_S = 0.01  # two start times this close: the same process, not a later one with its pid


def pid_alive(pid: int) -> bool:
    """True while the process runs; a zombie (exited, not yet reaped by its parent) has stopped."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def running_as(pid: int, created: float) -> psutil.Process | None:
    """Process `pid` if it still runs and is the one that started at `created` (pids are reused)."""
    try:
        proc = psutil.Process(pid)
        return proc if abs(proc.create_time() - created) < SAME_PROCESS_S else None
    except psutil.Error:
        return None


def terminate_then_kill(procs: Sequence[psutil.Process], grace_s: float, kill_wait_s: float) -> None:
    """SIGTERM every process, SIGKILL those still alive after `grace_s`, then wait for them."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _gone, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=kill_wait_s)


ProcessTable = Mapping[int, Sequence[tuple[int, float]]]
"""Parent pid -> its children's (pid, start time): one walk of every process on the machine."""


def process_table() -> ProcessTable:
    """Every process's children, read once. Each read walks /proc whole, so a caller recording
    the descendants of several processes reads one table for all of them."""
    table: dict[int, list[tuple[int, float]]] = {}
    for proc in psutil.process_iter(["ppid", "create_time"]):
        info = proc.info
        if info["ppid"] is not None and info["create_time"] is not None:
            table.setdefault(info["ppid"], []).append((proc.pid, info["create_time"]))
    return table


# Told the pid of every process a ManagedProcess starts in this process: `rezerv up` writes them
# down for the next one, in case it is killed before it can stop them (stack/leftovers.py).
_start_listeners: list[Callable[[int], None]] = []


def on_every_start(listener: Callable[[int], None]) -> Callable[[], None]:
    """Call `listener(pid)` after every ManagedProcess start from now on; returns its removal."""
    _start_listeners.append(listener)
    return lambda: _start_listeners.remove(listener)


@dataclass
class ManagedProcess:
    """One long-running child with its log file, readiness check and orphan-free stop."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    user: int | None = None
    group: int | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout_s: float = 15.0
    popen: subprocess.Popen[bytes] | None = None
    _descendants: dict[int, float] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.popen = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                user=self.user,
                group=self.group,
                extra_groups=[] if self.user is not None else None,
                start_new_session=True,  # a Ctrl-C at the terminal reaches only `rezerv up`
            )
        except OSError as exc:
            raise StartupError(f"{self.name} could not be executed ({exc}); is the install complete?") from exc
        finally:
            log.close()
        for listener in list(_start_listeners):
            listener(self.popen.pid)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout_s: float, hint: str = "") -> None:
        """Poll `ready` until true; fail early with the log's tail if the process exits."""
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            if not self.alive():
                code = self.popen.returncode if self.popen else None
                raise StartupError(
                    f"{self.name} exited during start-up (exit code {code}). {hint}Read its log: "
                    f"{self.log_path}\n--- last lines ---\n{tail(self.log_path)}"
                )
            if ready():
                self.record_descendants()
                return
            if time.monotonic() > deadline:
                self.stop()
                raise StartupError(
                    f"{self.name} did not become ready within {timeout_s:.0f} s. {hint}Read its log: "
                    f"{self.log_path}\n--- last lines ---\n{tail(self.log_path)}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def record_descendants(self, table: ProcessTable | None = None) -> None:
        """Remember every process below this one, so a later stop can reach them after reparenting
        (from `table` if given, else from a table read now)."""
        if not self.alive() or self.popen is None:
            return
        table = process_table() if table is None else table
        below = list(table.get(self.popen.pid, ()))
        seen = {self.popen.pid}  # the table is read process by process: a reused pid may loop it
        while below:
            pid, created = below.pop()
            if pid in seen:
                continue
            seen.add(pid)
            self._descendants[pid] = created
            below.extend(table.get(pid, ()))

    def stop(self) -> int | None:
        """Signal, wait, then SIGKILL the process and any recorded descendant still alive."""
        if self.popen is None:
            return None
        self.record_descendants()
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(timeout=5)
        self._kill_leftover_descendants()
        return self.popen.returncode

    def _kill_leftover_descendants(self) -> None:
        leftovers = [p for pid, created in self._descendants.items() if (p := running_as(pid, created))]
        if leftovers:
            terminate_then_kill(leftovers, grace_s=3.0, kill_wait_s=3.0)


def unprivileged_ids() -> tuple[int | None, int | None]:
    """(uid, gid) to run PostgreSQL as: `nobody` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None, None
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError as exc:
        raise StartupError(
            "Running as root, and there is no `nobody` user to run PostgreSQL as (PostgreSQL "
            "refuses root). Run rezerv as an ordinary user."
        ) from exc
    return entry.pw_uid, entry.pw_gid
