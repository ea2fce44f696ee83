"""The people and things a load test needs, created through the API before the measured window.

A population is a JSON file: the base URL, an admin token, the customers (each with its own
token and a funded wallet), and the scenario's events and cars. `rezerv loadtest` writes it
once per target; every Locust process reads it (`--population`). Customers are funded with an
admin credit (with its reason) through the API, like any wallet, so the first booking does not pay for creating
a wallet. Ids carry the run's tag, so a population never collides with earlier data in the same
store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from api.auth import issue_token
from engine.config import Settings
from loadtest.dates import days_ahead, starts_in
from stack.demo import DemoRequest, send_requests

FLASH_SALE = "flash-sale"
RENTAL_STORM = "rental-storm"
BROWSE_AND_BOOK = "browse-and-book"
SCENARIOS = (FLASH_SALE, RENTAL_STORM, BROWSE_AND_BOOK)

TICKET_PRICE = 5_000  # minor units
DEPOSIT = 10**10  # per customer: far more than any run spends
HOT_TIER = "standard"
HOT_TIER_SIZE = 1_000_000  # the most one request may create; topped up before every step
CAR_RATE = 7_500
RENTAL_LEAD_DAYS = 30  # the rental season starts this many days after the day of the run
RENTAL_SPAN_DAYS = 60
EVENT_LEAD_DAYS = 90  # the load tests' events start this many days after the day of the run
TOKEN_TTL_S = 6 * 3600
ACCOUNTS = 16  # registered accounts the log-in users log in as (a registration costs a password hash)
ACCOUNT_PASSWORD = "load-test password 0"


@dataclass(frozen=True)
class Customer:
    customer_id: str
    token: str


@dataclass
class Population:
    scenario: str
    base_url: str
    tag: str
    admin_token: str
    customers: list[Customer] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # {"event_id", "tiers": [names]}
    cars: list[str] = field(default_factory=list)
    rental_first_day: str = field(default_factory=lambda: days_ahead(RENTAL_LEAD_DAYS).isoformat())
    rental_span_days: int = RENTAL_SPAN_DAYS
    accounts: list[str] = field(default_factory=list)  # logins of registered accounts (ACCOUNT_PASSWORD)

    @property
    def entities(self) -> set[str]:
        """The stream ids of the run's events and cars."""
        return {f"event/{e['event_id']}" for e in self.events} | {f"car/{c}" for c in self.cars}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Population:
        data = json.loads(path.read_text())
        data["customers"] = [Customer(**c) for c in data["customers"]]
        return cls(**data)


def _event(event_id: str, tiers: Sequence[tuple[str, int]]) -> DemoRequest:
    return DemoRequest(
        "POST",
        "/events",
        {
            "event_id": event_id,
            "title": f"Load test {event_id}",
            "venue": "127.0.0.1",
            "starts_at": starts_in(EVENT_LEAD_DAYS),
            "tiers": [{"name": name, "price": TICKET_PRICE, "quantity": size} for name, size in tiers],
        },
    )


def _car(car_id: str) -> DemoRequest:
    body = {"car_id": car_id, "brand": "Load", "model": "Test", "location": "Oslo", "daily_rate": CAR_RATE}
    return DemoRequest("POST", "/cars", body)


def plan(
    scenario: str, tag: str, customers: int, events: int, cars: int, unfunded: int = 0
) -> tuple[list[str], list[DemoRequest], dict[str, Any]]:
    """(customer ids, the requests that create the catalog and fund them, the catalog to record).
    The last `unfunded` customers get no money: each of their bookings fails to pay and is
    released (the saga's failure path, `--unfunded`)."""
    if not 0 <= unfunded <= customers:
        raise ValueError(f"unfunded must be between 0 and the {customers} customers, not {unfunded}")
    ids = [f"c{tag}-{i:05d}" for i in range(customers)]
    requests: list[DemoRequest] = []
    catalog: dict[str, Any] = {"events": [], "cars": []}
    if scenario == FLASH_SALE:
        event_id = f"flash-{tag}"
        requests.append(_event(event_id, [(HOT_TIER, HOT_TIER_SIZE)]))
        catalog["events"].append({"event_id": event_id, "tiers": [HOT_TIER]})
    elif scenario == RENTAL_STORM:
        for i in range(cars):
            car_id = f"car-{tag}-{i:03d}"
            requests.append(_car(car_id))
            catalog["cars"].append(car_id)
    elif scenario == BROWSE_AND_BOOK:
        for i in range(events):
            event_id = f"show-{tag}-{i:03d}"
            tiers = [("standard", 100_000), ("balcony", 50_000), ("vip", 10_000)]
            requests.append(_event(event_id, tiers))
            catalog["events"].append({"event_id": event_id, "tiers": [name for name, _ in tiers]})
        for i in range(cars):
            car_id = f"car-{tag}-{i:03d}"
            requests.append(_car(car_id))
            catalog["cars"].append(car_id)
    else:
        raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
    for customer in ids[: customers - unfunded]:
        body = {"deposit_id": f"load-{tag}", "amount": DEPOSIT, "reason": "load test"}
        requests.append(DemoRequest("POST", f"/wallets/{customer}/deposits", body))
    return ids, requests, catalog


def create(
    scenario: str,
    base_url: str,
    jwt_secret: str,
    tag: str,
    customers: int = 1_000,
    events: int = 50,
    cars: int = 20,
    threads: int = 16,
    accounts: int = 0,
    unfunded: int = 0,
) -> Population:
    """Create the catalog and fund the customers (all but the last `unfunded`) through the API;
    returns the population."""
    settings = Settings(jwt_secret=jwt_secret)
    admin = issue_token(settings, "loadtest-admin", ("admin",), TOKEN_TTL_S)
    ids, requests, catalog = plan(scenario, tag, customers, events, cars, unfunded)
    catalog_requests = [r for r in requests if not r.path.startswith("/wallets/")]
    send_requests(base_url, admin, catalog_requests)
    deposits = [r for r in requests if r.path.startswith("/wallets/")]
    chunks = [deposits[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda chunk: send_requests(base_url, admin, chunk), chunks))
    population = Population(scenario, base_url, tag, admin, **catalog)
    population.accounts = register_accounts(base_url, tag, accounts)
    population.customers = [Customer(c, issue_token(settings, c, ("customer",), TOKEN_TTL_S)) for c in ids]
    return population


def register_accounts(base_url: str, tag: str, count: int) -> list[str]:
    """Register `count` accounts through the API (for the log-in load); their logins."""
    logins = [f"load-{tag}-{i:02d}" for i in range(count)]
    body = {"password": ACCOUNT_PASSWORD}
    send_requests(base_url, "", [DemoRequest("POST", "/auth/register", body | {"login": login}) for login in logins])
    return logins
