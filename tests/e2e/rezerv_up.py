"""Drive a real `rezerv up` process from a test: free ports, its own data directory, its output."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from stack.processes import free_port

REZERV = str(Path(sys.executable).with_name("rezerv"))
SERVER_WORDS = ("postgres", "valkey", "tansu", "ray", "gcs_server", "raylet", "uvicorn")


def up_environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REZERV_", "RAY_AUTH"))}
    # A stale token left in ~/.ray by some other Ray must not matter (stack/ray_auth.py).
    home = Path(tempfile.mkdtemp(prefix="rezerv-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)  # not one folder left per test run
    (home / ".ray").mkdir(parents=True, exist_ok=True)
    (home / ".ray" / "auth_token").write_text("0" * 64)
    env["HOME"] = str(home)
    env.update(
        REZERV_DATA_DIR=str(data_dir),
        REZERV_API_PORT=str(free_port()),
        REZERV_POSTGRES_PORT=str(free_port()),
        REZERV_REDIS_PORT=str(free_port()),
        REZERV_KAFKA_PORT=str(free_port()),
        REZERV_RAY_PORT=str(free_port()),
        REZERV_RAY_CLIENT_PORT=str(free_port()),
        REZERV_DASHBOARD_PORT=str(free_port()),
        REZERV_PROVIDER_PORT=str(free_port()),
        REZERV_PROMETHEUS_PORT=str(free_port()),  # used when Prometheus is installed
        REZERV_RAY_NUM_CPUS="2",
        REZERV_STARTUP_TIMEOUT_S="90",
    )
    env.update(extra)
    return env


@dataclass
class UpRun:
    env: dict[str, str]
    cwd: Path | None = None
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    descendants: dict[int, float] = field(default_factory=dict)
    _reader: threading.Thread | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['REZERV_API_PORT']}"

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REZERV, "up"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=self.cwd,
        )
        stdout = self.proc.stdout
        assert stdout is not None
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(stdout.readline, "")), daemon=True)
        self._reader.start()

    def wait_for(self, text: str, timeout_s: float) -> float:
        """Seconds until `text` appears in the output; fails if the process exits first."""
        assert self.proc is not None
        t0 = time.monotonic()
        while text not in self.output:
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(f"rezerv up exited ({self.proc.returncode}) before {text!r}:\n{self.output}")
            if time.monotonic() - t0 > timeout_s:
                raise AssertionError(f"no {text!r} after {timeout_s} s:\n{self.output}")
            self.record_descendants()
            time.sleep(0.1)
        self.record_descendants()
        return time.monotonic() - t0

    def record_descendants(self) -> None:
        assert self.proc is not None
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                try:
                    self.descendants[child.pid] = child.create_time()
                except psutil.Error:
                    continue
        except psutil.Error:
            pass

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 90) -> int:
        assert self.proc is not None
        self.record_descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout_s)
        if self._reader:
            self._reader.join(timeout=5)
        return code

    def survivors(self) -> list[str]:
        """Descendants recorded while it ran that are still alive now."""
        alive = []
        for pid, created in self.descendants.items():
            try:
                proc = psutil.Process(pid)
                if abs(proc.create_time() - created) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
            except psutil.Error:
                continue
        return alive

    def niceness_of(self, title: str) -> dict[int, int]:
        """pid -> nice value of the live descendants whose command line starts with `title`."""
        found = {}
        for pid in self.descendants:
            try:
                proc = psutil.Process(pid)
                if " ".join(proc.cmdline()).startswith(title):
                    found[pid] = proc.nice()
            except psutil.Error:
                continue
        return found

    def kill_everything(self) -> None:
        """Test cleanup when an assertion failed half-way: leave nothing behind regardless."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        self.record_descendants()
        for pid, created in self.descendants.items():
            try:
                proc = psutil.Process(pid)
                if abs(proc.create_time() - created) < 0.01:  # not a pid reused by another test's process
                    proc.kill()
            except psutil.Error:
                continue


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if text in cmdline and any(word in cmdline for word in SERVER_WORDS):
            found.append(f"{proc.info['pid']} {cmdline[:120]}")
    return found
