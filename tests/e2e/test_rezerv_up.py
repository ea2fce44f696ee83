"""`rezerv up` for real: ready in time, stops clean on SIGINT/SIGTERM, keeps its data, and
reports bad configuration in one paragraph instead of a traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import psutil
import pytest

from api.auth import issue_token
from engine.config import Settings
from stack.servers import MULTIPROCESSING_DIRS, ray_temp_dir
from tests.dates import starts_in
from tests.e2e.rezerv_up import REZERV, UpRun, processes_mentioning, up_environment
from tests.servers import remove_tree, session_root
from tests.tcp_segments import segments_of_one_response

pytestmark = pytest.mark.slow


@pytest.fixture
def data_root() -> Iterator[Path]:
    root = session_root()
    yield root
    remove_tree(root)


def get_json(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def api_call(
    base: str,
    method: str,
    path: str,
    token: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def tokens(env: dict[str, str]) -> tuple[str, str]:
    settings = Settings(jwt_secret=(Path(env["REZERV_DATA_DIR"]) / "jwt_secret").read_text().strip())
    return issue_token(settings, "admin", ("admin",)), issue_token(settings, "erin")


def book_through_the_whole_system(base: str, env: dict[str, str]) -> str:
    """Deposit, create an event, hold as a customer: the saga confirms it. Returns the hold id."""
    admin, erin = tokens(env)
    status, _ = api_call(
        base, "POST", "/wallets/erin/deposits", admin, {"deposit_id": "e2e-1", "amount": 10_000, "reason": "e2e"}
    )
    assert status in (200, 201)
    event = {
        "event_id": "e2e-show",
        "title": "E2E",
        "venue": "Hall",
        "starts_at": starts_in(30),
        "tiers": [{"name": "std", "price": 1_500, "quantity": 10}],
    }
    status, body = api_call(base, "POST", "/events", admin, event)
    assert status in (200, 201), body
    status, held = api_call(
        base, "POST", "/events/e2e-show/holds", erin, {"quantities": {"std": 2}}, {"Idempotency-Key": "e2e-hold-1"}
    )
    assert status == 201, held
    deadline = time.monotonic() + 40
    booking: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, booking = api_call(base, "GET", f"/bookings/{held['hold_id']}", erin)
        if status == 200 and booking["status"] == "CONFIRMED":
            break
        time.sleep(0.3)
    assert booking.get("status") == "CONFIRMED", booking
    assert booking["payment"]["status"] == "SUCCEEDED"
    return str(held["hold_id"])


def the_catalog_lists(base: str, event_id: str) -> dict[str, Any]:
    """The public catalog (no token) lists the demo data and, within seconds, `event_id` with its
    confirmed tickets: the catalog projection runs in the outbox service."""
    status, page = get_json(base + "/events?limit=100")
    assert status == 200, page
    assert len(cast(list[Any], page["items"])) == 100
    status, cars = get_json(base + "/cars?location=oslo&available_from=2027-05-03&available_to=2027-05-10")
    assert status == 200, cars
    assert cars["items"], "some demo cars in Oslo are free for that week"
    deadline = time.monotonic() + 20
    found: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, found = get_json(base + "/events?q=e2e")
        items = cast(list[dict[str, Any]], found.get("items") or [])
        if items and items[0]["tiers"][0]["confirmed"] == 2:
            return items[0]
        time.sleep(0.3)
    raise AssertionError(f"the catalog never showed {event_id} confirmed: {found}")


def test_no_ray_of_the_test_session_runs_beside_the_e2e_tests() -> None:
    # tests/conftest.py shuts the integration tests' Ray down before the first e2e test.
    if "ray" in sys.modules:
        import ray

        assert not ray.is_initialized()
    ours = [p.name() for p in psutil.Process().children(recursive=True) if p.is_running()]
    assert not [name for name in ours if name in ("gcs_server", "raylet")], ours


def test_up_is_ready_stops_clean_and_keeps_its_data(data_root: Path) -> None:
    env = up_environment(data_root / "data")
    first = UpRun(env)
    second = UpRun(env)
    try:
        first.start()
        elapsed = first.wait_for("rezerv is ready", timeout_s=60)
        assert elapsed < 60
        status, body = get_json(first.api + "/readyz")
        assert status == 200, body
        assert body["failing"] == []
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert set(checks) == {"postgres", "redis", "kafka", "ray"}
        for url in ("/docs", "/metrics", "/healthz"):
            with urllib.request.urlopen(first.api + url, timeout=5) as resp:
                assert resp.status == 200
        # The API's HTTP protocol sends an answer's head and body in one segment (api/one_write.py).
        port = int(first.api.rsplit(":", 1)[1])
        health = b"GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n"
        reply, segments = segments_of_one_response("127.0.0.1", port, health, b"}")
        assert reply.startswith(b"HTTP/1.1 200"), reply
        assert segments == 1, reply
        hold_id = book_through_the_whole_system(first.api, env)
        with urllib.request.urlopen(first.api + "/metrics", timeout=5) as resp:
            links = dict(
                re.findall(r'^rezerv_engine_shard_links\{transport="(\w+)"\} ([0-9.]+)$', resp.read().decode(), re.M)
            )
        # The API (on uvloop) sends its batches over the shards' sockets, not as Ray calls.
        assert float(links.get("stream", 0)) >= 1, links
        assert float(links.get("ray", 0)) == 0, links
        assert the_catalog_lists(first.api, "e2e-show")["event_id"] == "e2e-show"
        assert len(first.descendants) > 5, "expected servers below rezerv up"
        first.record_descendants()
        shards = first.niceness_of("ray::ShardActor")
        assert shards, "expected shard actor processes below rezerv up"
        assert set(shards.values()) == {0}, f"shards must not run at Ray's worker niceness: {shards}"
        # The dashboard's multiprocessing directory (its forkserver's socket) is made in Ray's temp
        # dir, not in /tmp, where each start left one behind.
        first_mp_dirs = set(ray_temp_dir(data_root / "data").glob(MULTIPROCESSING_DIRS))
        assert first_mp_dirs, "expected the dashboard's multiprocessing directory in Ray's temp dir"

        assert first.stop(signal.SIGINT) == 0
        assert first.survivors() == []
        assert processes_mentioning(str(data_root)) == []

        # Second run on the same data directory, stopped by `rezerv down` (SIGTERM).
        second.start()
        second.wait_for("rezerv is ready", timeout_s=60)
        # ...and the next start removes the one the stopped head left.
        second_mp_dirs = set(ray_temp_dir(data_root / "data").glob(MULTIPROCESSING_DIRS))
        assert second_mp_dirs
        assert not first_mp_dirs & second_mp_dirs, (first_mp_dirs, second_mp_dirs)
        admin, erin = tokens(env)
        status, booking = api_call(second.api, "GET", f"/bookings/{hold_id}", erin)
        assert (status, booking.get("status")) == (200, "CONFIRMED"), booking
        status, event = api_call(second.api, "GET", "/events/e2e-show", admin)
        assert status == 200
        assert event["tiers"][0]["confirmed"] == 2, event
        status, wallet = api_call(second.api, "GET", "/wallets/erin", erin)
        assert (status, wallet["balance"]) == (200, 10_000 - 2 * 1_500)
        down = subprocess.run([REZERV, "down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        assert second.stop(timeout_s=30) == 0
        assert second.survivors() == []
        assert "stopped." in second.output
    finally:
        first.kill_everything()
        second.kill_everything()


def gcs_pid(run: UpRun) -> int:
    """The Ray head's GCS among `run`'s processes, by the port it was given."""
    run.record_descendants()
    mark = f"--gcs_server_port={run.env['REZERV_RAY_PORT']}"
    for pid in run.descendants:
        try:
            if mark in " ".join(psutil.Process(pid).cmdline()):
                return pid
        except psutil.Error:
            continue
    raise AssertionError(f"no GCS process below rezerv up:\n{run.output}")


def test_what_a_killed_up_left_running_is_stopped_by_the_next_up_which_a_hang_up_stops_clean(
    data_root: Path,
) -> None:
    env = up_environment(data_root / "data")
    first = UpRun(env)
    second = UpRun(env)
    try:
        first.start()
        first.wait_for("rezerv is ready", timeout_s=60)
        assert first.proc is not None
        first.proc.kill()  # SIGKILL: nothing of it runs to stop its servers
        first.proc.wait()
        assert len(first.survivors()) > 5, "its servers, each in a session of its own, run on"

        second.start()
        second.wait_for("rezerv is ready", timeout_s=90)
        assert "processes an earlier `rezerv up` on this data directory left running" in second.output
        assert first.survivors() == []
        assert len(second.descendants) > 5

        assert second.stop(signal.SIGHUP) == 0  # the terminal closing
        assert "SIGHUP received, stopping." in second.output
        assert second.survivors() == []
        assert processes_mentioning(str(data_root)) == []
    finally:
        first.kill_everything()
        second.kill_everything()


def test_a_ray_head_that_dies_while_the_services_are_placed_is_started_again_once(data_root: Path) -> None:
    # The GCS killed as soon as the head is up: the deploy that follows finds it gone.
    run = UpRun(up_environment(data_root / "data"))
    try:
        run.start()
        run.wait_for("Ray head ready", timeout_s=90)
        os.kill(gcs_pid(run), signal.SIGKILL)
        run.wait_for("rezerv is ready", timeout_s=180)
        out = run.output
        assert "placing the services failed; starting the Ray head again (once)" in out
        assert "The Ray head exited" in out or "does not answer" in out, out  # the diagnosis says why
        assert out.count("starting the Ray head again") == 1
        status, body = get_json(run.api + "/readyz")
        assert (status, body["failing"]) == (200, [])
        assert run.stop(signal.SIGINT) == 0
        assert run.survivors() == []
    finally:
        run.kill_everything()


def run_up_expecting_failure(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([REZERV, "up"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    return result


def test_a_taken_port_is_named_with_the_setting_to_change(data_root: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        env = up_environment(data_root / "data", REZERV_POSTGRES_PORT=str(port))
        result = run_up_expecting_failure(env)
    assert f"Port {port}" in result.stderr
    assert "REZERV_POSTGRES_PORT" in result.stderr


def test_an_unreachable_external_database_is_named(data_root: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        env = up_environment(data_root / "data", REZERV_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/x")
        result = run_up_expecting_failure(env)
    assert "REZERV_DATABASE_URL" in result.stderr
    assert "not reachable" in result.stderr
    assert processes_mentioning(str(data_root)) == []


def test_an_unwritable_data_dir_is_named(data_root: Path) -> None:
    not_a_dir = data_root / "file"
    not_a_dir.write_text("")
    result = run_up_expecting_failure(up_environment(not_a_dir / "data"))
    assert "REZERV_DATA_DIR" in result.stderr
    assert "not writable" in result.stderr


def test_a_malformed_setting_is_named(data_root: Path) -> None:
    result = run_up_expecting_failure(up_environment(data_root / "data", REZERV_API_PORT="eighty"))
    assert result.returncode == 2
    assert "REZERV_API_PORT='eighty' is not a valid int" in result.stderr


def test_the_readme_quick_start_works_with_every_default() -> None:
    """`make up` as the README says: a fresh directory, no REZERV_* setting (the relative `.rezerv`
    data directory, the default ports and secret), then the README's first hold, and Ctrl-C.

    The directory is private (mode 700): as root, PostgreSQL (run as `nobody`) cannot reach it,
    which is what a clone under /root looks like."""
    from stack.processes import StartupError, require_free_port
    from stack.servers import RAY_OWNER_FILE, ray_temp_dir, remove_data_dir

    defaults = Settings()
    for port in (defaults.api_port, defaults.postgres_port, defaults.redis_port, defaults.kafka_port):
        try:
            require_free_port(port, "the default stack", "-")
        except StartupError:
            pytest.fail(f"port {port} is taken: stop the `rezerv up` running on the default ports first")
    workdir = Path(tempfile.mkdtemp(prefix="rezerv-quickstart-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REZERV_")}
    run = UpRun(env, cwd=workdir)
    try:
        run.start()
        run.wait_for("rezerv is ready", timeout_s=90)
        base = f"http://127.0.0.1:{defaults.api_port}"
        token = subprocess.run(
            [REZERV, "token", "alice"], cwd=workdir, env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        status, held = api_call(
            base,
            "POST",
            "/events/nordic-lights-2027/holds",
            token,
            {"quantities": {"standard": 2}},
            {"Idempotency-Key": "my-first-hold"},
        )
        assert status == 201, held
        assert held["status"] == "HELD"
        assert (workdir / ".rezerv" / "pg" / "PG_VERSION").exists()
        # The data dir's path is too long for Ray's sockets: its temp dir in /tmp names it.
        ray_dir = ray_temp_dir(workdir / ".rezerv")
        assert not ray_dir.is_relative_to(workdir)
        assert (ray_dir / RAY_OWNER_FILE).read_text() == str((workdir / ".rezerv").resolve())
        assert run.stop(signal.SIGINT) == 0
        assert run.survivors() == []
    finally:
        run.kill_everything()
        remove_data_dir(workdir / ".rezerv")
        shutil.rmtree(workdir, ignore_errors=True)
    assert not ray_dir.exists()
