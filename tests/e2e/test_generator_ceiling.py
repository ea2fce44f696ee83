"""The generator's ceiling for real: the null API in its own process over a socket, and a short run
of the flash sale's Locust scenario against it (loadtest/generator_ceiling.py, loadtest/null_api.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest import generator_ceiling


def test_the_null_api_answers_requests_in_one_keep_alive_connection_even_when_they_arrive_in_pieces() -> None:
    port = generator_ceiling.free_port()
    server = subprocess.Popen([sys.executable, "-m", "loadtest.null_api", str(port)])
    try:
        generator_ceiling._wait_for_port(port, server)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            request = b"POST /events/e/holds HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
            conn.sendall(request[:9])
            conn.sendall(request[9:] + b"GET /bookings/null-1 HTTP/1.1\r\nhost: x\r\n\r\n")
            received = b""
            while received.count(b"HTTP/1.1 ") < 2:
                chunk = conn.recv(4096)
                assert chunk, received
                received += chunk
        assert received.startswith(b"HTTP/1.1 201 Created")
        assert b"HTTP/1.1 200 OK" in received
    finally:
        server.terminate()
        assert server.wait(10) == 0  # SIGTERM stops it cleanly


@pytest.mark.slow
def test_a_short_ceiling_run_drives_the_flash_sale_scenario_and_writes_a_row_per_step(tmp_path: Path) -> None:
    code = generator_ceiling.main(["--users", "4", "--window", "2", "--warm-up", "0.5", "--results", str(tmp_path)])
    assert code == 0
    (run_dir,) = tmp_path.iterdir()
    _header, _rule, row = (run_dir / "ceiling.md").read_text().splitlines()
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "4"
    assert float(cells[1].replace(",", "")) > 0  # the 201s Locust counted in the window
    records = list((run_dir / "step-1-4u").glob("records-*.jsonl"))
    assert records
    assert records[0].stat().st_size > 0
