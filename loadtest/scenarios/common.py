"""What every scenario's customers do the same way: hold with an Idempotency-Key and retries, read
the booking once a moment later, record what they were told, stop at the end of the window.

The window: `--warm-up` seconds after Locust has spawned every user (so the system under test
is measured in its steady state, its pipelines full), the master (or the only process) starts the
window and tells the workers when it ends; `window.json` in `--records-dir` says when it began
and ends, for `rezerv loadtest`. After the end a user starts no new request, finishes the one it
is in, and stops; the master quits a moment later. With `--window 0` (the web UI) users run
until they are stopped.

Reading the booking: a hold's answer comes before the bookings read model has it (the projection
follows the log a moment behind), so a customer reads its booking once, `--read-after` seconds
after the 201, in between its next bookings (a queue per user, never a sleep). A 404 then is a
booking the read model still does not show: it is counted, as a failed read named so in Locust's
statistics and in the run's summary, never retried away.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter, deque
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, User, constant, constant_throughput, events, task
from locust.exception import CatchResponseError, LocustError, StopUser
from locust.runners import MasterRunner, WorkerRunner

from actors import gc_tuning
from loadtest.population import ACCOUNT_PASSWORD, Population
from loadtest.records import RecordWriter
from loadtest.retry import NETWORK_ERROR, RetryPolicy
from loadtest.scenarios.lean_http import Answer, LeanHttp
from loadtest.scenarios.paths import WINDOW_FILE, login_users
from loadtest.window_latency import LATENCY_FILE, WindowLatencies

HOLD_ROUTES = {"event": "POST /events/{id}/holds", "car": "POST /cars/{id}/holds"}
READ_ROUTE = "GET /bookings/{id}"
SETTLE_S = 1.0  # after the window, how long the master waits before quitting
STATUS_FILE = "statuses-{pid}.json"

POLICY = RetryPolicy()
_state: dict[str, Any] = {"window_end": None, "population": None, "records": None}
_ENVIRONMENT: dict[str, Any] = {}  # the process's Locust environment (spawning_complete does not pass it)
_statuses: Counter[tuple[str, int]] = Counter()
_latencies = WindowLatencies()  # the requests that started inside the window (loadtest/window_latency.py)


def _arguments(parser: Any) -> None:
    parser.add_argument("--population", default="", help="the population file `rezerv loadtest` wrote")
    parser.add_argument("--records-dir", default="", help="where each process writes what its users were told")
    parser.add_argument("--window", type=float, default=0.0, help="measured seconds; 0: until stopped")
    parser.add_argument("--warm-up", type=float, default=0.0, help="seconds between spawning and the window")
    parser.add_argument("--read-after", type=float, default=2.0, help="seconds between a hold and its read")
    parser.add_argument("--logins-per-s", type=float, default=0.0, help="log-ins per second beside the bookings")


def _options(environment: Any) -> Any:
    return environment.parsed_options


def _init(environment: Any, **_kwargs: Any) -> None:
    _ENVIRONMENT["env"] = environment
    _size_logins(environment)
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message("window", _window_from_master)


def _window_from_master(msg: Any, **_kwargs: Any) -> None:
    """A worker learns when the window began and ends (the master opened it). Locust hands the
    message over as `msg=` (until 2026-12-04 this took `message` and failed on every worker, so
    workers never learned the window's end: their users stopped only when the master quit)."""
    _set_window(msg.data["start"], msg.data["end"])


def _set_window(start: float, end: float) -> None:
    """The window's bounds, for the users (when to stop) and the latency counts (what to count)."""
    _state["window_end"] = end
    _latencies.open(start, end)


def _settle() -> None:
    """Every user is spawned: what the process keeps from now on (users, connections, the
    population) leaves the garbage collector's sight, and young collections run less often. The
    generator shares the cores with the system it measures, and its collector took 11.5% of its
    samples at 256 users (BENCHMARKS.md); every system is measured with the same setting."""
    gc_tuning.settle_request_loop()


def _start_window(user_count: int, **_kwargs: Any) -> None:
    _settle()
    environment = _ENVIRONMENT.get("env")
    if environment is None or isinstance(environment.runner, WorkerRunner):
        return
    window = _options(environment).window
    if window <= 0:
        return
    warm_up = _options(environment).warm_up
    if warm_up > 0:
        gevent.spawn_later(warm_up, _open_window, environment, user_count, window, True)
    else:
        _open_window(environment, user_count, window, False)


def _open_window(environment: Any, user_count: int, window: float, reset_stats: bool) -> None:
    """The window starts now: its end goes to every user (and worker), `window.json` is written,
    and after a warm-up Locust's statistics start again, so its percentiles cover the window only
    (the answers' status counts keep the warm-up: an error there is still reported)."""
    if reset_stats:
        environment.runner.stats.reset_all()
    start = time.time()
    end = start + window
    _set_window(start, end)
    if isinstance(environment.runner, MasterRunner):
        environment.runner.send_message("window", {"start": start, "end": end})
    directory = Path(_options(environment).records_dir or ".")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / WINDOW_FILE).write_text(json.dumps({"start": start, "end": end, "users": user_count}))
    gevent.spawn_later(window + SETTLE_S, environment.runner.quit)


def _count(name: str, response: Any, response_time: float = 0.0, start_time: float | None = None, **_: Any) -> None:
    _statuses[(name, int(getattr(response, "status_code", 0) or 0))] += 1
    _latencies.record(name, start_time, response_time)


def _dump_counts(environment: Any) -> None:
    """This process's counts so far, each kind in its own file: the answers by status
    (STATUS_FILE) and the windowed response times (LATENCY_FILE); each file replaced whole."""
    if not _statuses:
        return
    directory = Path(_options(environment).records_dir or ".")
    directory.mkdir(parents=True, exist_ok=True)
    counts: dict[str, dict[str, int]] = {}
    for (name, status), count in _statuses.items():
        counts.setdefault(name, {})[str(status)] = count
    for name, body in ((STATUS_FILE, counts), (LATENCY_FILE, _latencies.as_json())):
        path = directory / name.format(pid=os.getpid())
        path.with_suffix(".tmp").write_text(json.dumps(body))
        path.with_suffix(".tmp").replace(path)


def _start_dumping(environment: Any, **_kwargs: Any) -> None:
    def loop() -> None:
        while True:
            gevent.sleep(2.0)
            _dump_counts(environment)

    if not isinstance(environment.runner, MasterRunner):
        gevent.spawn(loop)


def _final_dump(environment: Any, **_kwargs: Any) -> None:
    _dump_counts(environment)
    if _state["records"] is not None:
        _state["records"].close()


_LISTENERS: dict[str, Any] = {
    "init_command_line_parser": _arguments,
    "init": _init,
    "spawning_complete": _start_window,
    "request": _count,
    "test_start": _start_dumping,
    "test_stop": _final_dump,
}
for _hook, _listener in _LISTENERS.items():
    getattr(events, _hook).add_listener(_listener)


def population(environment: Any) -> Population:
    if _state["population"] is None:
        _state["population"] = Population.load(Path(_options(environment).population))
        _state["records"] = RecordWriter(Path(_options(environment).records_dir or "."))
    return _state["population"]  # type: ignore[no-any-return]


class Customer(User):  # type: ignore[misc]
    """A client acting for one customer per booking, drawn at random from the population. Its
    requests go through the suite's own lean client (loadtest/scenarios/lean_http.py), one
    keep-alive connection per user, and reach Locust's statistics through its `request` event."""

    abstract = True
    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = 10.0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if not self.host:
            raise LocustError("the base URL of the system under test is needed: Locust's --host")
        self.http = LeanHttp(self.host, self.network_timeout, self.connection_timeout)

    def on_start(self) -> None:
        self.population = population(self.environment)
        self.records: RecordWriter = _state["records"]
        self.rng = random.Random()
        # Idempotency-Keys: this user's random prefix (a uuid4's 122 random bits) and a count, so
        # unique across users, processes and steps, without a uuid4 (a system call) per booking.
        self.key_prefix = f"{uuid.uuid4().hex}-"
        self.keys_sent = 0
        self.reads: deque[tuple[float, str, str]] = deque()  # (due, hold id, token)
        self.read_after = float(_options(self.environment).read_after)

    def on_stop(self) -> None:
        self.http.close()

    # ---- the window ------------------------------------------------------------------------
    def stop_after_window(self) -> None:
        end = _state["window_end"]
        if end is not None and time.time() >= end:
            raise StopUser

    # ---- reading a booking ----------------------------------------------------------------
    def read_due(self) -> bool:
        """Read the oldest acknowledged booking whose time has come; False if none is due."""
        if not self.reads or self.reads[0][0] > time.time():
            return False
        _due, hold_id, token = self.reads.popleft()
        answer = self.http.request("GET", f"/bookings/{hold_id}", READ_ROUTE, _auth(token))
        if answer.status_code == 200:
            report(self.environment, answer)
        elif answer.status_code == 404:
            report(self.environment, answer, "HTTP 404: the booking is not in the read model yet")
        else:
            report(self.environment, answer, _failure(answer))
        return True

    # ---- holding --------------------------------------------------------------------------
    def customer(self) -> tuple[str, str]:
        c = self.rng.choice(self.population.customers)
        return c.customer_id, c.token

    def hold(self, kind: str, entity_id: str, body: dict[str, Any]) -> None:
        """One booking: a new key, retried on network errors, 503 and 429 (as RetryPolicy says)."""
        customer, token = self.customer()
        self.keys_sent += 1
        key = f"{self.key_prefix}{self.keys_sent:x}"
        entity = f"{kind}/{entity_id}"
        self.records.intent(customer, entity, key)
        headers = _auth(token) | {"Idempotency-Key": key}
        acked: list[str] = []
        amount = expires_at = None
        acked_at: float | None = None
        attempt = 0
        while True:
            attempt += 1
            answer = self.http.request("POST", f"/{kind}s/{entity_id}/holds", HOLD_ROUTES[kind], headers, body)
            status = answer.status_code or NETWORK_ERROR
            retry_after = answer.headers.get("retry-after")
            granted = answer.json_object() if status == 201 else None
            if granted is not None and isinstance(granted.get("hold_id"), str):
                acked.append(granted["hold_id"])
                amount, expires_at = granted.get("amount"), granted.get("expires_at_ms")
                acked_at = time.time()
                report(self.environment, answer)
            elif status == 201:
                report(self.environment, answer, "HTTP 201 without a hold id in its body")
            else:
                report(self.environment, answer, _failure(answer))
            pause = POLICY.pause(status, retry_after, attempt)
            if status == 201 or pause is None:
                break
            gevent.sleep(pause)
        self.records.outcome(customer, entity, key, status, acked, amount, expires_at, acked_at, attempt)
        if acked:
            self.reads.append((time.time() + self.read_after, acked[0], token))

    def get(self, path: str, name: str, token: str) -> None:
        answer = self.http.request("GET", path, name, _auth(token))
        report(self.environment, answer, None if answer.status_code == 200 else _failure(answer))


def report(environment: Any, answer: Answer, failure: str | None = None) -> None:
    """Fire Locust's `request` event for `answer`, once: a failure when `failure` names one, or
    when no HTTP answer came (the error); a success otherwise, whatever the status (the caller
    judges statuses, as Locust's `catch_response` lets it)."""
    exception: BaseException | None = answer.error
    if failure is not None:
        exception = CatchResponseError(failure)
    environment.events.request.fire(
        request_type=answer.method,
        name=answer.name,
        response_time=answer.response_time_ms,
        response_length=len(answer.content),
        response=answer,
        context={},
        exception=exception,
        start_time=answer.start_time,
        url=answer.path,
    )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _failure(answer: Answer | Any) -> str:
    """What went wrong, for Locust's failures table (an `Answer`, or a log-in's Locust response)."""
    if not answer.status_code:
        return f"network error: {type(answer.error).__name__}"
    return f"HTTP {answer.status_code}"


# ---- log-ins beside the bookings ----------------------------------------------------------------
LOGIN_ROUTE = "POST /auth/login"


class LoggingIn(FastHttpUser):  # type: ignore[misc]
    """Logs in again and again as one of the population's registered accounts (argon2 on the server),
    at --logins-per-s in all; none when that is 0. Added to a locustfile's users by importing it."""

    fixed_count = 0
    wait_time = constant(1)
    network_timeout = 30.0

    def on_start(self) -> None:
        self.population = population(self.environment)
        self.rng = random.Random()

    @task
    def log_in(self) -> None:
        end = _state["window_end"]
        if end is not None and time.time() >= end:
            raise StopUser
        login = self.rng.choice(self.population.accounts)
        body = {"login": login, "password": ACCOUNT_PASSWORD}
        with self.client.post("/auth/login", json=body, name=LOGIN_ROUTE, catch_response=True) as response:
            if response.status_code == 200:
                response.success()
            else:
                response.failure(_failure(response))


def _size_logins(environment: Any) -> None:
    """LoggingIn users for --logins-per-s (constant throughput each), or none at all."""
    rate = float(getattr(_options(environment), "logins_per_s", 0.0) or 0.0)
    if rate <= 0:
        environment.user_classes[:] = [c for c in environment.user_classes if c is not LoggingIn]
        return
    LoggingIn.fixed_count = login_users(rate)
    LoggingIn.wait_time = constant_throughput(rate / LoggingIn.fixed_count)
