"""The generator's ceiling for real: the null API in its own process over a socket, and a short run
of the flash sale's Locust scenario against it (loadtest/generator_ceiling.py, loadtest/null_api.py)."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from loadtest import generator_ceiling
from stack.processes import free_port


# How each stops on SIGTERM: the raw server returns from its loop; uvicorn shuts down gracefully
# and then dies of the signal it got, as its own SIGTERM handling does.
@pytest.mark.parametrize(("kind", "exit_code"), [("raw", 0), ("uvicorn", -signal.SIGTERM)])
def test_the_null_api_answers_requests_in_one_keep_alive_connection_even_when_they_arrive_in_pieces(
    kind: str, exit_code: int, tmp_path: Path
) -> None:
    server = generator_ceiling.null_server(kind, free_port(), tmp_path / "server.log")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
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
        assert server.process.stop() == exit_code


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
