"""`rezerv up` for real: ready in time, stops clean on SIGINT/SIGTERM, keeps its data, and
reports bad configuration in one paragraph instead of a traceback."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from tests.e2e.rezerv_up import REZERV, UpRun, processes_mentioning, up_environment
from tests.servers import remove_tree, session_root

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


async def write_marker(env: dict[str, str]) -> None:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{env['REZERV_POSTGRES_PORT']}/rezerv")
    try:
        await conn.execute(
            "INSERT INTO events (stream_id, version, event_type, data) VALUES ('e2e-marker', 1, 'Marker', 'x')"
        )
    finally:
        await conn.close()
    client = redis.Redis(port=int(env["REZERV_REDIS_PORT"]))
    client.set("e2e-marker", "kept")
    client.close()


async def read_marker(env: dict[str, str]) -> tuple[int, object]:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{env['REZERV_POSTGRES_PORT']}/rezerv")
    try:
        rows = await conn.fetchval("SELECT count(*) FROM events WHERE stream_id = 'e2e-marker'")
    finally:
        await conn.close()
    client = redis.Redis(port=int(env["REZERV_REDIS_PORT"]))
    value = client.get("e2e-marker")
    client.close()
    return rows, value


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
        asyncio.run(write_marker(env))
        assert len(first.descendants) > 5, "expected servers below rezerv up"

        assert first.stop(signal.SIGINT) == 0
        assert first.survivors() == []
        assert processes_mentioning(str(data_root)) == []

        # Second run on the same data directory, stopped by `rezerv down` (SIGTERM).
        second.start()
        second.wait_for("rezerv is ready", timeout_s=60)
        assert asyncio.run(read_marker(env)) == (1, b"kept")
        down = subprocess.run([REZERV, "down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        assert second.stop(timeout_s=30) == 0
        assert second.survivors() == []
        assert "stopped." in second.output
    finally:
        first.kill_everything()
        second.kill_everything()


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
