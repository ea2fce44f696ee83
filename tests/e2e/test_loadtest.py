"""`rezerv loadtest` for real: a few seconds of the flash sale, a few users, against the `rezerv up`
it starts for the run (fresh data directory, free ports), with the audit passing."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from loadtest.records import read_acknowledgements
from loadtest.targets import RAY_SESSION_LOGS
from loadtest.window_latency import read_latencies
from tests.e2e.rezerv_up import REZERV, processes_mentioning, up_environment
from tests.servers import remove_tree, session_root

pytestmark = pytest.mark.slow


def run_loadtest(root: Path, *options: str) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """`rezerv loadtest run` with `options` and 20 customers: (run folder, target, its only step),
    after checking that it passed and its audit was clean."""
    env = up_environment(root / "unused")  # the command picks its own data directory and ports
    argv = [REZERV, "loadtest", "run", *options, "--customers", "20", "--results", str(root / "results")]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "audit of rezerv: OK" in result.stdout
    (run_dir,) = (root / "results").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    (target,) = summary["targets"]
    (step,) = target["steps"]
    return run_dir, target, step


def test_a_short_flash_sale_runs_end_to_end_and_its_audit_passes() -> None:
    # Half the customers have no money: both of the saga's paths run, and the audit covers both.
    # Two Locust worker processes: the window, the records and the audit span both (the other
    # tests here run Locust as one process).
    root = session_root()
    try:
        options = ("--users", "4", "--window", "3", "--warm-up", "1", "--read-after", "0.5", "--unfunded", "0.5")
        run_dir, target, step = run_loadtest(root, *options, "--locust-processes", "2")
        step_dir = run_dir / "rezerv" / "users-00004"
        assert len(list(step_dir.glob("records-*.jsonl"))) == 2, "each worker writes its own records"
        window = json.loads((step_dir / "window.json").read_text())
        acks = [a.at for a in read_acknowledgements(step_dir)]
        assert any(at < window["start"] for at in acks), "the users held during the warm-up"
        in_window = sum(window["start"] <= at <= window["end"] for at in acks)
        assert abs(step["holds_per_s"] * step["window_s"] - in_window) < 1, "only the window's holds count"
        # The percentiles: holds that started inside the window, counted by both workers (at most
        # one per user started before it and answered inside, or started inside and answered after).
        assert len(list(step_dir.glob("latencies-*.json"))) == 2
        timed = sum(read_latencies(step_dir)["POST /events/{id}/holds"].values())
        assert abs(timed - in_window) <= 4, (timed, in_window)
        assert target["audit"]["ok"]
        assert {c["check"] for c in target["audit"]["checks"] if c["checked"] > 0} >= {
            "acknowledged holds stored exactly once",
            "balance = deposits - charges + refunds",
            "the bookings read model equals a replay of the log",
        }
        assert step["holds_per_s"] > 0
        assert step["confirmed_per_s"] > 0
        assert step["released_per_s"] > 0, "the customers without money had their bookings released"
        assert step["api_admitted_holds"]["admitted"] > 0  # the API's own timing, from its /metrics
        assert step["routes"]["POST /events/{id}/holds"]["statuses"].get("201", 0) > 0
        assert step["cpu_percent"]["load generator"] > 0
        assert step["core_speed"]["samples"] >= 2  # once a second in the 3 s window
        assert step["left_in_flight"] == 0
        assert step["left_held"] == 0
        for name in (
            "locust_stats.csv",
            "locust.html",
            "summary.json",
            "api-metrics-before.txt",
            "api-metrics-after.txt",
        ):
            assert (run_dir / "rezerv" / "users-00004" / name).exists()
        assert (run_dir / "chart.png").stat().st_size > 10_000
        logs = run_dir / "rezerv" / "logs"  # kept from the target's temporary folder, which is gone
        assert "rezerv is ready" in (logs / "up.log").read_text()
        assert (logs / "postgres.log").stat().st_size > 0
        # The shards' and the saga services' own logs, from Ray's session: one per actor process.
        actors = [f.read_text() for f in (logs / RAY_SESSION_LOGS).glob("worker-*.err")]
        assert sum(":actor_name:ShardActor" in text for text in actors) >= 1, actors
        assert sum(":actor_name:ServiceActor" in text for text in actors) >= 1, actors
        assert processes_mentioning("rezerv-loadtest-") == []
    finally:
        remove_tree(root)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="the wrk program is not installed")
def test_a_short_flash_sale_driven_by_wrk_counts_its_confirmations_and_its_audit_passes() -> None:
    root = session_root()
    try:
        _, target, step = run_loadtest(root, "--generator", "wrk", "--users", "8", "--window", "3")
        checks = {c["check"]: c["checked"] for c in target["audit"]["checks"]}
        assert step["generator"] == "wrk"
        assert step["holds_per_s"] > 0
        assert step["confirmed_per_s"] > 0
        assert step["unmatched_201"] == 0
        # every 201 wrk saw was matched to its key and checked against the store
        assert checks["acknowledged holds stored exactly once"] == step["keys"]["acknowledged"] > 0
        # the API admitted every hold wrk sent (no 429 at 8 connections) and timed each one
        assert step["api_admitted_holds"]["admitted"] >= step["keys"]["acknowledged"]
        assert step["cpu_percent"]["load generator"] > 0
        assert step["left_held"] == 0
        assert "GET /bookings/{id}" not in step["routes"]  # wrk reads nothing
        assert processes_mentioning("rezerv-loadtest-") == []
    finally:
        remove_tree(root)


def test_compare_in_two_rounds_runs_rezerv_and_a_baseline_in_a_b_b_a_order_and_compares_their_means() -> None:
    root = session_root()
    try:
        env = up_environment(root / "unused")
        argv = [REZERV, "loadtest", "compare", "--targets", "rezerv,conditional-update", "--rounds", "2"]
        argv += ["--users", "4", "--window", "2", "--warm-up", "0.5", "--read-after", "0.5", "--customers", "20"]
        argv += ["--results", str(root / "results")]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=400)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        started = [line.split(":")[0] for line in result.stdout.splitlines() if line.endswith(": starting")]
        assert started == ["rezerv", "conditional-update", "conditional-update", "rezerv"]
        (run_dir,) = (root / "results").iterdir()
        summary = json.loads((run_dir / "summary.json").read_text())
        assert [(t["target"], t["round"]) for t in summary["targets"]] == [
            ("rezerv", 1),
            ("conditional-update", 1),
            ("conditional-update", 2),
            ("rezerv", 2),
        ]
        assert all(t["audit"]["ok"] and t["steps"][0]["confirmed_per_s"] > 0 for t in summary["targets"])
        for number in (1, 2):
            for target in ("rezerv", "conditional-update"):
                assert (run_dir / f"round-{number}" / target / "users-00004" / "summary.json").exists()
            kept = run_dir / f"round-{number}"
            assert (kept / "conditional-update" / "logs" / "conditional-update.log").exists()
            assert (kept / "baseline-servers" / "logs" / "postgres.log").stat().st_size > 0
        table = (run_dir / "comparison.md").read_text()
        assert "| fixed work, ms |" in table
        # the baseline's row in the throughput table, then in the table of CPU per booking
        row, cost = [line for line in table.splitlines() if line.startswith("| 4 | conditional-update |")]
        assert re.search(r"\| [\d.]+x \([\d.]+x\*?, [\d.]+x\*?\) \|", row), row  # the means' ratio, then each round's
        own_cpu = r"\| 4 \| conditional-update \| [\d,]+ \| [\d,]+ \| [\d.]+x \([\d.]+x\*?, [\d.]+x\*?\) \|"
        assert re.fullmatch(own_cpu, cost), cost  # its own CPU and the generator's per booking, rezerv's over its
        assert processes_mentioning("rezerv-loadtest-") == []
        assert processes_mentioning("rezerv-baselines-") == []
    finally:
        remove_tree(root)


def sigterm_a_run_when(
    root: Path, ready: Callable[[Path], bool], command: Sequence[str] = ("run",)
) -> tuple[list[int], str]:
    """Start `rezerv loadtest run` (or `command`: a 60 s step), send it SIGTERM as soon as
    `ready(its log)`, and check it exits with 143. Returns the processes below it at that moment
    that still run (killed after being noted, so they cannot disturb later tests) and its log."""
    env = up_environment(root / "unused")
    argv = [REZERV, "loadtest", *command, "--users", "4", "--window", "60", "--customers", "20"]
    argv += ["--results", str(root / "results")]
    log = root / "loadtest.log"
    with log.open("w") as out:
        driver = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    started: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while not ready(log) and time.monotonic() < deadline:
            assert driver.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        assert ready(log), log.read_text()[-3000:]
        started = [p.pid for p in psutil.Process(driver.pid).children(recursive=True)]
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=150) == 128 + signal.SIGTERM, log.read_text()[-3000:]
    finally:
        if driver.poll() is None:
            driver.kill()
    left = [pid for pid in started if _running(pid)]
    for pid in left:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    return left, log.read_text()


def test_sigterm_in_the_middle_of_a_step_stops_the_run_and_every_process_of_its_target() -> None:
    root = session_root()
    stepping: dict[str, float] = {}

    def inside_the_step(log: Path) -> bool:
        """5 s after the population is made: Locust and the whole stack are running."""
        if "customers funded" in log.read_text():
            stepping.setdefault("since", time.monotonic())
        return time.monotonic() - stepping.get("since", float("inf")) > 5

    try:
        left, log = sigterm_a_run_when(root, inside_the_step)
        assert "stopped by SIGTERM" in log
        assert left == []
        assert processes_mentioning("rezerv-loadtest-") == []
    finally:
        remove_tree(root)


def test_sigterm_while_the_target_is_starting_stops_the_run_and_everything_it_had_started() -> None:
    root = session_root()

    def starting(log: Path) -> bool:
        """The target's first server runs, the population is not made yet."""
        return bool(processes_mentioning("rezerv-loadtest-")) and "customers funded" not in log.read_text()

    try:
        left, log = sigterm_a_run_when(root, starting)
        assert "customers funded" not in log, "it was still starting"
        assert "stopped by SIGTERM" in log
        assert left == []  # `rezerv up` and the servers it had started
        assert processes_mentioning("rezerv-loadtest-") == []
        (run_dir,) = (root / "results").iterdir()
        assert (run_dir / "rezerv" / "logs" / "up.log").exists(), "what the start wrote is kept"
    finally:
        remove_tree(root)


def test_sigterm_while_the_baselines_servers_start_stops_them_and_keeps_their_logs() -> None:
    root = session_root()

    def starting(log: Path) -> bool:
        """initdb or PostgreSQL runs (its log is open), the first baseline is not started yet."""
        return bool(processes_mentioning("rezerv-baselines-")) and ": starting" not in log.read_text()

    try:
        left, log = sigterm_a_run_when(root, starting, ("compare", "--targets", "conditional-update"))
        assert ": starting" not in log, "the servers were still starting"
        assert "stopped by SIGTERM" in log
        assert left == []
        assert processes_mentioning("rezerv-baselines-") == []
        (run_dir,) = (root / "results").iterdir()
        assert (run_dir / "baseline-servers" / "logs" / "postgres.log").stat().st_size > 0  # one round: no round-1
    finally:
        remove_tree(root)


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent that has gone."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
