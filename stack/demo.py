"""Demo data for `rezerv up`: events, cars and wallets, posted through the real HTTP API; enough of
them (about 200 events over the coming year, 100 cars) to make the catalog worth browsing.

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
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    """Every request of the demo, in order; amounts in minor units (cents). The README's events
    start 75, 96 and 206 days after `today` (UTC today when None); the generated catalog (200 more
    events over the coming year in six cities, 100 more cars in five) comes from a fixed seed."""
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
        *catalog_events(200, today),
        *catalog_cars(100),
        _deposit("alice", 500_000),
        _deposit("bob", 250_000),
        _deposit("carol", 1_000_000),
    ]


# ---- the generated catalog -------------------------------------------------------------------
CITIES: dict[str, list[str]] = {
    "Oslo": ["Oslo Spektrum, Oslo", "Sentrum Scene, Oslo", "Operaen, Oslo", "Rockefeller, Oslo"],
    "Bergen": ["Grieghallen, Bergen", "USF Verftet, Bergen", "Bergenhus, Bergen"],
    "Trondheim": ["Olavshallen, Trondheim", "Byscenen, Trondheim"],
    "Stavanger": ["Stavanger Konserthus, Stavanger", "Folken, Stavanger"],
    "Tromso": ["Kulturhuset, Tromso", "Arctic Arena, Tromso"],
    "Stockholm": ["Cirkus, Stockholm", "Sodra Teatern, Stockholm"],
}
KINDS: list[tuple[str, list[str], list[str], list[tuple[str, int, int]]]] = [
    # (id word, title openings, title endings, tiers (name, price, quantity))
    (
        "concert",
        ["Aurora", "Northern", "Midnight", "Electric", "Arctic"],
        ["Lights", "Echoes", "Nights", "Tour"],
        [("standard", 5_900, 800), ("vip", 14_900, 60)],
    ),
    (
        "jazz",
        ["Blue", "Late", "Smoky", "Cellar"],
        ["Jazz", "Jazz Session", "Quartet", "Swing Night"],
        [("seat", 3_500, 120)],
    ),
    (
        "opera",
        ["La", "The Magic", "Winter", "Nordic"],
        ["Traviata", "Flute", "Opera Gala", "Voices"],
        [("stalls", 45_000, 300), ("balcony", 25_000, 200)],
    ),
    ("comedy", ["Stand-up", "Late Night", "Improv"], ["Comedy", "Comedy Club", "Laughs"], [("seat", 2_900, 250)]),
    (
        "festival",
        ["Fjord", "Midsummer", "Harbour", "Polar"],
        ["Festival", "Rock Festival", "Folk Fest"],
        [("day", 4_500, 3_000), ("weekend", 7_900, 1_500)],
    ),
    (
        "theatre",
        ["A Doll's", "Peer", "The Wild", "Ghosts of the"],
        ["House", "Gynt", "Duck", "Fjord"],
        [("stalls", 6_500, 400)],
    ),
]
FLEET: dict[str, tuple[str, int]] = {  # location -> (id prefix, cars)
    "Oslo": ("osl", 30),
    "Bergen": ("bgo", 25),
    "Trondheim": ("trd", 20),
    "Stavanger": ("svg", 15),
    "Tromso": ("tos", 10),
}
MODELS: list[tuple[str, str, int]] = [  # brand, model, daily rate
    ("Tesla", "Model 3", 8_900),
    ("Tesla", "Model Y", 9_900),
    ("Volvo", "XC40", 7_900),
    ("Volvo", "XC60", 10_900),
    ("Volvo", "V60", 8_500),
    ("Volkswagen", "ID.4", 7_500),
    ("Volkswagen", "Golf", 5_900),
    ("Toyota", "RAV4", 8_500),
    ("Toyota", "Yaris", 4_900),
    ("Polestar", "2", 9_500),
    ("Skoda", "Enyaq", 7_900),
    ("Kia", "EV6", 8_900),
    ("BMW", "i4", 12_900),
]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


def catalog_events(count: int, today: date) -> list[DemoRequest]:
    """`count` events spread over the coming year in six cities (local times with their UTC
    offset). Ids and bodies depend only on the seed and `today`."""
    rng = random.Random(2027)
    out = []
    cities = list(CITIES)
    for n in range(count):
        city = cities[n % len(cities)]
        kind, openings, endings, tiers = KINDS[rng.randrange(len(KINDS))]
        starts = today + timedelta(days=7 + rng.randrange(358))
        offset = "+02:00" if 4 <= starts.month <= 10 else "+01:00"
        hour = rng.choice([18, 19, 20, 21])
        scale = rng.choice([0.25, 0.5, 1, 1, 2])
        priced = [(name, price + rng.randrange(0, 2_000, 100), max(10, int(q * scale))) for name, price, q in tiers]
        out.append(
            _event(
                f"{kind}-{_slug(city)}-{n:03d}",
                f"{rng.choice(openings)} {rng.choice(endings)}",
                rng.choice(CITIES[city]),
                f"{starts.isoformat()}T{hour}:00:00{offset}",
                priced,
                max_per_booking=rng.choice([0, 4, 8, 10]),
            )
        )
    return out


def catalog_cars(count: int) -> list[DemoRequest]:
    """`count` cars in five locations."""
    rng = random.Random(42)
    cars: list[DemoRequest] = []
    per_location = [location for location, (_, n) in FLEET.items() for _ in range(n)]
    for n, location in enumerate(per_location[:count]):
        prefix = FLEET[location][0]
        brand, model, rate = MODELS[rng.randrange(len(MODELS))]
        long_rental = rng.random() < 0.3
        cars.append(
            _car(
                f"{prefix}-{_slug(brand)}-{_slug(model)}-{n + 100:03d}",
                brand,
                model,
                location,
                rate + rng.randrange(-500, 1_000, 100),
                min_days=rng.choice([1, 1, 1, 2, 3]),
                discount_from_days=7 if long_rental else 0,
                discount_per_day=1_000 if long_rental else 0,
            )
        )
    return cars


Opener = Callable[..., Any]


def send_requests(
    base_url: str,
    token: str,
    requests: Sequence[DemoRequest],
    urlopen: Opener = urllib.request.urlopen,
    sleep: Callable[[float], None] = time.sleep,
    concurrency: int = 1,
) -> list[int]:
    """Send each request, up to `concurrency` at once (the demo's requests are independent); the
    HTTP statuses in request order, or StartupError naming a refused request."""

    def send(request: DemoRequest) -> int:
        return _send(base_url, token, request, urlopen, sleep)

    if concurrency <= 1:
        return [send(request) for request in requests]
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(send, requests))


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
    send_requests(api_base_url(settings), token, demo_requests(), concurrency=8)
