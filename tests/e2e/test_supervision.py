"""One real `rezerv up`, shared by these tests in order: it listens on loopback only, keeps its
secrets private and off every command line, revokes tokens within a second; then it survives
the broker, Valkey, PostgreSQL and the Ray head being killed under a small load (every
acknowledged hold ends, no wallet is charged twice, holds are taken again within seconds); and
last, a server that keeps dying stops the whole stack with a message that names it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from api.auth import issue_token
from engine.config import Settings
from stack.processes import tail
from stack.secrets import is_private
from tests.e2e.load import Answer, HoldLoad
from tests.e2e.rezerv_up import REZERV, UpRun, up_environment
from tests.e2e.test_rezerv_up import api_call
from tests.servers import postgres_lets_in, remove_tree, session_root, valkey_answers

pytestmark = pytest.mark.slow

CUSTOMERS = [f"c{i}" for i in range(8)]
DEPOSIT = 1_000_000
PRICE = 100
EVENT = "chaos-show"
REQUEST_RETRY_S = 2.0
RESTART_LIMIT = 3
ENDED = {"CONFIRMED", "RELEASED", "EXPIRED", "CANCELLED"}
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


@dataclass
class Running:
    run: UpRun
    settings: Settings  # with the stack's JWT secret
    admin: str
    tokens: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        return self.run.env

    @property
    def data_dir(self) -> Path:
        return Path(self.env["REZERV_DATA_DIR"])

    def processes(self) -> list[psutil.Process]:
        """`rezerv up` and every live process below it."""
        assert self.run.proc is not None
        up = psutil.Process(self.run.proc.pid)
        return [up, *up.children(recursive=True)]


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    root = session_root()
    env = up_environment(
        root / "data",
        REZERV_DEMO_DATA="0",
        REZERV_KAFKA_SESSION_TIMEOUT_MS="2000",
        REZERV_SAGA_RETRY_AFTER_S="2",
        REZERV_EXPIRY_SWEEP_S="1",
        REZERV_REQUEST_RETRY_S=str(REQUEST_RETRY_S),
        REZERV_RESTART_LIMIT=str(RESTART_LIMIT),
        REZERV_RESTART_WINDOW_S="900",
    )
    run = UpRun(env)
    try:
        run.start()
        run.wait_for("rezerv is ready", timeout_s=120)
        settings = Settings(jwt_secret=(root / "data" / "jwt_secret").read_text().strip())
        admin = issue_token(settings, "admin", ("admin",))
        tokens = {c: issue_token(settings, c) for c in CUSTOMERS}
        for c in CUSTOMERS:
            status, body = api_call(
                run.api,
                "POST",
                f"/wallets/{c}/deposits",
                admin,
                {"deposit_id": "d", "amount": DEPOSIT, "reason": "test"},
            )
            assert status in (200, 201), body
        event = {
            "event_id": EVENT,
            "title": "Chaos",
            "venue": "Hall",
            "starts_at": "2027-09-01T20:00:00+00:00",
            "tiers": [{"name": "std", "price": PRICE, "quantity": 1_000_000}],
        }
        status, body = api_call(run.api, "POST", "/events", admin, event)
        assert status in (200, 201), body
        yield Running(run, settings, admin, tokens)
    finally:
        if run.proc is not None and run.proc.poll() is None:
            run.stop(timeout_s=120)
        run.kill_everything()
        remove_tree(root)


# ---- exposure and secrets ----------------------------------------------------------------------
def test_every_process_of_the_stack_listens_on_loopback_only(running: Running) -> None:
    listening: dict[str, set[str]] = {}
    for proc in running.processes():
        try:
            sockets = [c for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
            name = proc.name()
        except psutil.Error:
            continue
        for sock in sockets:
            listening.setdefault(name, set()).add(sock.laddr.ip)
    names = " ".join(listening)
    for expected in ("postgres", "valkey", "tansu", "gcs_server", "raylet", "DashboardA", "RuntimeEnv", "python"):
        assert expected in names, f"no listening socket of {expected} seen: {listening}"
    exposed = {name: ips - LOOPBACK for name, ips in listening.items() if ips - LOOPBACK}
    assert exposed == {}


def test_the_shards_run_at_normal_priority_and_rays_processes_without_its_event_stats(running: Running) -> None:
    seen: set[str] = set()
    for proc in running.processes():
        try:
            name = proc.name()
            if not name.startswith(("ray::ShardActor", "raylet", "gcs_server")):
                continue
            environ, nice = proc.environ(), proc.nice()
        except psutil.Error:
            continue
        seen.add(name)
        assert environ.get("RAY_event_stats") == "0", f"{name} ({proc.pid}) times its event loops"
        if name.startswith("ray::ShardActor"):
            assert nice == 0, f"a shard runs at nice {nice} (Ray starts its workers at 15)"
    assert {"raylet", "gcs_server"} <= seen, seen
    assert any(n.startswith("ray::ShardActor") for n in seen), seen


def test_no_answer_names_the_server_software(running: Running) -> None:
    customer = CUSTOMERS[0]
    token = running.tokens[customer]
    # /healthz goes through the ASGI app; a booking read is answered by the HTTP protocol itself.
    for path, wanted in (("/healthz", 200), ("/bookings/no-such-hold", 404)):
        request = urllib.request.Request(running.run.api + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status, headers = answer.status, answer.headers
        except urllib.error.HTTPError as refused:
            status, headers = refused.code, refused.headers
        assert status == wanted, (path, status)
        assert headers.get("server") is None, (path, headers.get("server"))


def test_secrets_are_private_files_and_on_no_command_line(running: Running) -> None:
    data = running.data_dir
    files = ["jwt_secret", "postgres_password", "valkey_password", "ray_auth_token", "provider_secret"]
    for name in [*files, "valkey/valkey.conf"]:
        assert is_private(data / name), f"{name} is readable by others"
    secrets = [(data / name).read_text().strip() for name in files]
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        assert not any(secret in cmdline for secret in secrets), f"a secret is on the command line of {proc.pid}"


def test_a_new_customer_signs_up_tops_up_books_and_is_notified_live(running: Running) -> None:
    """The README's session against the real stack: an account, a top-up paid at the local
    provider's checkout (its signed callback credits the wallet), a booking, its confirmation on
    the live notification stream, and the statement."""
    import json
    import threading
    import urllib.request

    api = running.run.api
    password = "a long passphrase"
    status, made = api_call(api, "POST", "/auth/register", "", {"login": "dana@example.com", "password": password})
    assert status == 201, made
    status, session = api_call(api, "POST", "/auth/login", "", {"login": "dana@example.com", "password": password})
    assert status == 200, session
    me, token = session["customer_id"], session["access_token"]
    status, topup = api_call(api, "POST", f"/wallets/{me}/topups", token, {"amount": 20_000})
    assert status == 201, topup
    with urllib.request.urlopen(urllib.request.Request(topup["checkout_url"] + "/pay", method="POST"), timeout=30) as r:
        assert json.loads(r.read())["status"] == "PAID"
    assert api_call(api, "GET", f"/wallets/{me}", token)[1]["balance"] == 20_000

    seen: list[dict[str, Any]] = []
    opened = threading.Event()

    def listen() -> None:
        request = urllib.request.Request(f"{api}/customers/{me}/notifications/stream")
        request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=60) as stream:
            opened.set()
            for raw in stream:
                if raw.startswith(b"data:"):
                    seen.append(json.loads(raw[5:]))
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(20)
    status, held = api_call(
        api, "POST", f"/events/{EVENT}/holds", token, {"quantities": {"std": 2}}, {"Idempotency-Key": "dana-1"}
    )
    assert status == 201, held
    listener.join(60)
    assert [(n["hold_id"], n["outcome"]) for n in seen] == [(held["hold_id"], "CONFIRMED")]
    deadline = time.monotonic() + 30
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(entries) < 2:
        entries = api_call(api, "GET", f"/wallets/{me}/statement", token)[1]["entries"]
        time.sleep(0.3)
    assert [(e["kind"], e["amount"], e["balance"]) for e in entries] == [
        ("charge", -2 * PRICE, 20_000 - 2 * PRICE),
        ("deposit", 20_000, 20_000),
    ]


def test_postgresql_and_valkey_refuse_clients_without_the_password(running: Running) -> None:
    env = running.env
    pg_password = (running.data_dir / "postgres_password").read_text().strip()
    valkey_password = (running.data_dir / "valkey_password").read_text().strip()
    pg = f"127.0.0.1:{env['REZERV_POSTGRES_PORT']}/rezerv"
    redis_url = f"127.0.0.1:{env['REZERV_REDIS_PORT']}/0"

    assert postgres_lets_in(f"postgresql://postgres:{pg_password}@{pg}")
    assert not postgres_lets_in(f"postgresql://postgres@{pg}")
    assert valkey_answers(f"redis://:{valkey_password}@{redis_url}")
    assert not valkey_answers(f"redis://{redis_url}")


def test_a_revoked_token_is_refused_within_about_a_second(running: Running) -> None:
    token = issue_token(running.settings, "c0")
    assert api_call(running.run.api, "GET", "/wallets/c0", token)[0] == 200
    revoked = subprocess.run([REZERV, "revoke", token, "--reason", "e2e"], env=running.env, capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    t0 = time.monotonic()
    while True:
        status, body = api_call(running.run.api, "GET", "/wallets/c0", token)
        if status == 401:
            break
        assert time.monotonic() - t0 < 3.0, "the revoked token was still accepted after 3 s"
        time.sleep(0.05)
    assert body["code"] == "token-revoked"
    assert time.monotonic() - t0 < 1.5
    assert api_call(running.run.api, "GET", "/wallets/c0", running.tokens["c0"])[0] == 200


def test_no_token_outlives_the_lifetime_cap(running: Running) -> None:
    refused = subprocess.run([REZERV, "token", "c0", "--ttl", str(10 * 86400)], env=running.env, capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 2
    assert "REZERV_TOKEN_MAX_TTL_S" in refused.stderr


# ---- killed servers ----------------------------------------------------------------------------
def server_pid(running: Running, server: str) -> int:
    """The main process of `server`, found by its command line among the stack's processes."""
    env = running.env
    marks = {
        "Kafka broker": ("tansu", f"127.0.0.1:{env['REZERV_KAFKA_PORT']}"),
        "Valkey": ("valkey-server", f":{env['REZERV_REDIS_PORT']}"),
        "PostgreSQL": ("postgres -D", f"-p {env['REZERV_POSTGRES_PORT']}"),
        "Ray head": ("gcs_server", f"--gcs_server_port={env['REZERV_RAY_PORT']}"),
    }[server]
    for proc in running.processes():
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if all(mark in cmdline for mark in marks):
            return int(proc.pid)
    raise AssertionError(f"no process of {server} found")


def wait_for_count(run: UpRun, text: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while run.output.count(text) < count:
        assert run.proc is not None
        assert run.proc.poll() is None, f"rezerv up exited:\n{run.output[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} within {timeout_s} s:\n{run.output[-3000:]}"
        run.record_descendants()
        time.sleep(0.1)


def booking(running: Running, hold_id: str) -> dict[str, Any]:
    status, body = api_call(running.run.api, "GET", f"/bookings/{hold_id}", running.admin)
    return body if status == 200 else {}


def settled(b: dict[str, Any]) -> bool:
    """Ended, and no refund outstanding."""
    return b.get("status") in ENDED and not (b["status"] != "CONFIRMED" and b["payment"]["status"] == "SUCCEEDED")


def wait_until_every_hold_ended(running: Running, hold_ids: list[str], timeout_s: float = 90) -> None:
    pending = set(hold_ids)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        pending = {h for h in pending if not settled(booking(running, h))}
        if pending:
            time.sleep(0.5)
    assert not pending, (
        f"{len(pending)} acknowledged holds never ended, e.g. {[booking(running, h) for h in list(pending)[:3]]}"
    )


def money_is_exact(running: Running) -> list[str]:
    """Per wallet: the deposit minus the bookings charged and not refunded (empty if all agree)."""
    wrong = []
    for c in CUSTOMERS:
        status, listed = api_call(running.run.api, "GET", f"/customers/{c}/bookings?limit=200", running.admin)
        assert status == 200, listed
        if not all(settled(b) for b in listed["bookings"]):
            wrong.append(f"{c}: a booking is still open")
            continue
        charged = sum(b["amount"] for b in listed["bookings"] if b["payment"]["status"] == "SUCCEEDED")
        status, wallet = api_call(running.run.api, "GET", f"/wallets/{c}", running.admin)
        if status != 200 or wallet["balance"] != DEPOSIT - charged:
            wrong.append(f"{c}: balance {wallet.get('balance')}, expected {DEPOSIT - charged}")
    return wrong


def wait_for_exact_money(running: Running, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    agreed = 0
    while agreed < 2:  # twice in a row, a second apart: the read model has caught up
        wrong = money_is_exact(running)
        agreed = agreed + 1 if not wrong else 0
        assert wrong == [] or time.monotonic() < deadline, f"the money does not add up: {wrong}"
        time.sleep(1.0)


def check_the_answers(answers: list[Answer], killed_at: float, back_at: float, server: str) -> list[str]:
    statuses = Counter(a.status for a in answers)
    allowed = {201, 503} | ({0} if server == "Ray head" else set())  # the API itself restarts with Ray
    if server == "Kafka broker":
        allowed = {201}  # a hold never needs the broker
    assert set(statuses) <= allowed, f"unexpected answers: {statuses}"
    assert all(a.retry_after for a in answers if a.status == 503), "a 503 without Retry-After"
    slowest = max(a.seconds for a in answers)
    assert slowest < REQUEST_RETRY_S + 5, f"a request hung for {slowest:.1f} s"
    served_again = [a.started + a.seconds for a in answers if a.status == 201 and a.started >= back_at]
    after = Counter((a.status, a.code) for a in answers if a.started >= back_at)
    assert served_again, f"no hold was granted after {server} came back: {statuses}; after it: {after}"
    assert min(served_again) - back_at < 10
    assert any(a.status == 201 for a in answers if a.started < killed_at), "the load never ran before the kill"
    return [a.hold_id for a in answers if a.hold_id]


@pytest.mark.parametrize("server", ["Kafka broker", "Valkey", "PostgreSQL", "Ray head"])
def test_a_killed_server_comes_back_and_every_acknowledged_hold_ends_with_exact_money(
    running: Running, server: str
) -> None:
    run = running.run
    backs = run.output.count(f"{server} is back")
    load = HoldLoad(running.run.api, EVENT, running.tokens, rate_per_s=15, tag=f"kill-{server.split(maxsplit=1)[0]}")
    load.start()
    try:
        time.sleep(1.5)
        killed_at = time.monotonic()
        os.kill(server_pid(running, server), signal.SIGKILL)
        wait_for_count(run, f"{server} is back", backs + 1, timeout_s=120 if server == "Ray head" else 30)
        back_at = time.monotonic()
        deadline = back_at + 15
        while time.monotonic() < deadline and not any(a.status == 201 and a.started >= back_at for a in load.answers):
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        answers = load.stop()
    assert f"{server} stopped unexpectedly" in run.output
    try:
        held = check_the_answers(answers, killed_at, back_at, server)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- rezerv up ---\n{run.output[-1500:]}\n--- api.log ---\n"
                             f"{tail(running.data_dir / 'logs' / 'api.log', 40)}") from None  # fmt: skip
    wait_until_every_hold_ended(running, held)
    wait_for_exact_money(running)


def test_a_server_that_keeps_dying_stops_the_stack_with_a_message_naming_it(running: Running) -> None:
    run = running.run
    assert run.proc is not None
    kills = 0
    while run.proc.poll() is None and kills <= RESTART_LIMIT + 1:
        backs = run.output.count("Kafka broker is back")
        os.kill(server_pid(running, "Kafka broker"), signal.SIGKILL)
        kills += 1
        deadline = time.monotonic() + 60
        while run.output.count("Kafka broker is back") == backs and run.proc.poll() is None:
            assert time.monotonic() < deadline, run.output[-3000:]
            run.record_descendants()
            time.sleep(0.1)
    assert run.stop(timeout_s=120) == 1
    assert "Kafka broker stopped unexpectedly" in run.output
    assert f"REZERV_RESTART_LIMIT={RESTART_LIMIT}" in run.output
    assert "Giving up: stopping everything" in run.output
    assert "tansu.log" in run.output
    assert run.survivors() == []
