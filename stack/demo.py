"""Demo data for `rezerv up`: events, cars and wallets, posted through the real HTTP API.

Why through HTTP and not straight into the engine: the demo then also proves that the API, auth
and the shards work end to end before `rezerv up` prints "ready". Split in two: `demo_requests`
is pure (the unit tests check its ids and validate its bodies against api/schemas.py), and
`send_requests` does the I/O.

Running it twice changes nothing: every id is fixed and the engine answers a repeated create or
deposit with ``changed: false`` (HTTP 200 instead of 201). The events start a fixed number of days
after the day the demo is loaded (an event may not start in the past, nor beyond the booking
horizon), so on a later day an existing data directory already holds the demo's events with other
dates: for the demo's events and cars, 409 `already-exists` means "loaded before" and the entity
is left as it is. Any other refusal (a deposit repeated with another amount, say) is reported.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from engine.config import Settings
from stack.processes import StartupError

ACCEPTED = (200, 201)
ALREADY_EXISTS = 409  # with the problem code below: accepted for requests marked `exists_ok`
ALREADY_EXISTS_CODE = "already-exists"
ATTEMPTS = 5  # a 503 (shards still starting) or a refused connection is retried this many times
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DemoRequest:
    method: str
    path: str
    body: dict[str, Any]
    exists_ok: bool = False  # a 409 `already-exists` answer counts as done (see the module docstring)


def _event(
    event_id: str, title: str, venue: str, starts_at: str, tiers: list[tuple[str, int, int]], max_per_booking: int = 0
) -> DemoRequest:
    return DemoRequest(
        "POST",
        "/events",
        {
            "event_id": event_id,
            "title": title,
            "venue": venue,
            "starts_at": starts_at,
            "tiers": [{"name": n, "price": p, "quantity": q} for n, p, q in tiers],
            "max_tickets_per_booking": max_per_booking,
        },
        exists_ok=True,
    )


def _starts(today: date, days: int, at: str) -> str:
    """ISO 8601: `days` after `today`, at the local time and offset `at` (e.g. "19:30:00+01:00")."""
    return f"{(today + timedelta(days=days)).isoformat()}T{at}"


def _car(
    car_id: str,
    brand: str,
    model: str,
    location: str,
    daily_rate: int,
    min_days: int = 1,
    discount_from_days: int = 0,
    discount_per_day: int = 0,
) -> DemoRequest:
    return DemoRequest(
        "POST",
        "/cars",
        {
            "car_id": car_id,
            "brand": brand,
            "model": model,
            "location": location,
            "daily_rate": daily_rate,
            "min_days": min_days,
            "discount_from_days": discount_from_days,
            "discount_per_day": discount_per_day,
        },
        exists_ok=True,
    )


def _deposit(customer_id: str, amount: int) -> DemoRequest:
    body = {"deposit_id": "demo-initial", "amount": amount, "reason": "demo data"}
    return DemoRequest("POST", f"/wallets/{customer_id}/deposits", body)


def demo_requests(today: date | None = None) -> list[DemoRequest]:
    """Every request of the demo, in order; amounts in minor units (cents). The events start 75,
    96 and 206 days after `today` (UTC today when None)."""
    today = today or datetime.now(UTC).date()
    return [
        _event(
            "nordic-lights-2027",
            "Nordic Lights",
            "Oslo Spektrum",
            _starts(today, 75, "19:30:00+01:00"),
            [("standard", 5_900, 500), ("vip", 14_900, 40)],
            max_per_booking=8,
        ),
        _event(
            "jazz-cellar-2027",
            "Jazz in the Cellar",
            "Bla, Oslo",
            _starts(today, 96, "21:00:00+01:00"),
            [("seat", 3_500, 20)],
            max_per_booking=4,
        ),
        _event(
            "midsummer-fest-2027",
            "Midsummer Festival",
            "Bergenhus, Bergen",
            _starts(today, 206, "16:00:00+02:00"),
            [("day", 4_500, 2_000), ("weekend", 7_900, 1_000)],
        ),
        _car("osl-tesla-m3-01", "Tesla", "Model 3", "Oslo", 8_900),
        _car("osl-volvo-xc40-01", "Volvo", "XC40", "Oslo", 7_900),
        _car("osl-vw-id4-01", "Volkswagen", "ID.4", "Oslo", 7_500),
        _car(
            "bgo-toyota-rav4-01",
            "Toyota",
            "RAV4",
            "Bergen",
            8_500,
            min_days=2,
            discount_from_days=7,
            discount_per_day=1_500,
        ),
        _car("bgo-polestar-2-01", "Polestar", "2", "Bergen", 9_500),
        _deposit("alice", 500_000),
        _deposit("bob", 250_000),
        _deposit("carol", 1_000_000),
    ]


Opener = Callable[..., Any]


def send_requests(
    base_url: str,
    token: str,
    requests: Sequence[DemoRequest],
    urlopen: Opener = urllib.request.urlopen,
    sleep: Callable[[float], None] = time.sleep,
) -> list[int]:
    """Send each request; the HTTP statuses, or StartupError naming the first refused request."""
    return [_send(base_url, token, request, urlopen, sleep) for request in requests]


def _send(base_url: str, token: str, request: DemoRequest, urlopen: Opener, sleep: Callable[[float], None]) -> int:
    data = json.dumps(request.body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    what = f"{request.method} {request.path}"
    for attempt in range(1, ATTEMPTS + 1):
        http_request = urllib.request.Request(base_url + request.path, data, headers, method=request.method)
        try:
            with urlopen(http_request, timeout=TIMEOUT_S) as response:
                status = int(response.status)
        except urllib.error.HTTPError as err:
            status, problem = err.code, _problem(err)
            if status == ALREADY_EXISTS and request.exists_ok and problem.get("code") == ALREADY_EXISTS_CODE:
                return status
            if status != 503 or attempt == ATTEMPTS:
                detail = _detail(problem, err)
                raise StartupError(f"Loading demo data failed: {what} answered {status}: {detail}") from None
        except OSError as exc:
            if attempt == ATTEMPTS:
                raise StartupError(f"Loading demo data failed: {what} could not reach the API ({exc})") from None
        else:
            if status in ACCEPTED:
                return status
            raise StartupError(f"Loading demo data failed: {what} answered {status}")
        sleep(1.0)
    raise AssertionError("unreachable")  # pragma: no cover


def _problem(err: urllib.error.HTTPError) -> dict[str, Any]:
    """The refusal's problem body ({} if it has none)."""
    try:
        body = json.loads(err.read() or b"{}")
    except (OSError, ValueError):
        body = {}
    return body if isinstance(body, dict) else {"detail": body}


def _detail(problem: dict[str, Any], err: urllib.error.HTTPError) -> str:
    detail = problem.get("detail") or problem.get("title")
    return " ".join(str(detail or err.reason or "no detail").split())[:300]  # one line, however long the body


def api_base_url(settings: Settings) -> str:
    """Where this machine reaches the API: a wildcard bind address is reached over loopback."""
    host = settings.api_host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.api_port}"


def load_demo_data(settings: Settings) -> None:
    from api.auth import issue_token

    token = issue_token(settings, subject="demo-loader", roles=("admin",), ttl_s=600)
    send_requests(api_base_url(settings), token, demo_requests())
