"""The wrk script for real: wrk runs it against a small HTTP server that grants holds as the API
does (the hold id derived from the key) and refuses some, and every answer comes back as records
the audit reads. Needs the wrk program (`--generator wrk` names it when it is missing)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from api.hold_keys import hold_id_for
from loadtest.population import Customer
from loadtest.records import read_client_holds
from loadtest.wrk_step import convert_records, lua_script, parse_summary, wrk_argv

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="the wrk program is not installed")

CUSTOMERS = [Customer("ann", "tok-ann"), Customer("bo", "tok-bo"), Customer("cy", "tok-cy")]
TOKENS = {f"Bearer {c.token}": c.customer_id for c in CUSTOMERS}


class _HoldServer(BaseHTTPRequestHandler):
    """201 with the derived hold id, or 409 when the key ends in 7; remembers what it granted."""

    protocol_version = "HTTP/1.1"
    granted: dict[str, tuple[str, str, int]] = {}  # hold id -> (customer, key, quantity)
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        customer = TOKENS[self.headers["Authorization"]]
        key = self.headers["Idempotency-Key"]
        quantity = body["quantities"]["std"]
        assert self.path == "/events/show/holds"
        assert 1 <= quantity <= 4
        answer: dict[str, object]
        if key.endswith("7"):
            status, answer = 409, {"type": "sold-out"}
        else:
            hold_id = hold_id_for(customer, "event", "show", key)
            with self.lock:
                self.granted[hold_id] = (customer, key, quantity)
            status, answer = 201, {"hold_id": hold_id, "amount": 100 * quantity, "expires_at_ms": 1}
        out = json.dumps(answer, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """wrk hangs up on requests in flight when its time is up: not worth a traceback in the log."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = _Server(("127.0.0.1", 0), _HoldServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_every_201_wrk_received_becomes_an_acknowledged_client_hold_for_its_key(server: str, tmp_path: Path) -> None:
    _HoldServer.granted.clear()
    script = tmp_path / "wrk.lua"
    script.write_text(lua_script(CUSTOMERS, "/events/show/holds", "std", "t", tmp_path))
    wrk = shutil.which("wrk")
    assert wrk is not None
    run = subprocess.run(wrk_argv(wrk, server, 4, 1, script), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    figures = parse_summary(run.stdout)
    answers = convert_records(tmp_path, tmp_path, CUSTOMERS, "event", "show")

    assert answers.acknowledged > 20
    assert answers.unmatched == 0
    assert answers.statuses.get("409", 0) > 0
    assert sum(answers.statuses.values()) == figures["requests"]
    assert answers.sent >= figures["requests"]  # those in flight at the end were sent, not answered
    holds = read_client_holds(tmp_path)
    acknowledged = {h.hold_id: h for h in holds if h.acked}
    # Every hold the client was told about is one the server granted, to that customer, for that key.
    assert len(acknowledged) == answers.acknowledged
    for hold_id, hold in acknowledged.items():
        customer, key, quantity = _HoldServer.granted[hold_id]
        assert (hold.customer, hold.key, hold.amount) == (customer, key, 100 * quantity)
    assert len({h.key for h in holds}) == len(holds) == answers.sent  # a new key per request
    assert {h.customer for h in holds} == {c.customer_id for c in CUSTOMERS}
