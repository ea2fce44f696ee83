"""A schema-driven fuzz run of the whole OpenAPI document (schemathesis), against the real app.

Every operation of `/openapi.json` is called with requests generated from its schema, valid ones
and invalid ones (schemathesis's positive and negative modes), as a customer and as an admin, on
in-process shards (tests/unit/local_shard.py) with a small catalog, and every answer is checked:
no 5xx, a status code the document lists for the operation, a content type and a body that match
what it documents for that status.

Generated ids rarely name anything that exists, so the path's ids are swapped for the catalog's
ids half of the time, and so are the tiers and days of a hold (schemathesis hooks): requests then
reach real events, tiers, cars and bookings, and the engine's rules, not only the validation.

The run is bounded (MAX_EXAMPLES per operation and principal, plus schemathesis's fixed
boundary cases) and derandomized, so CI always sends the same requests (about 20 s of CPU). To
fuzz longer, or with new random requests each time, by hand:
`FUZZ_MAX_EXAMPLES=300 FUZZ_RANDOM=1 .venv/bin/python -m pytest tests/unit/api/test_fuzz_openapi.py`.

schemathesis serves the app on its own event loop, in a thread: the shards are started there
(`AppOnLocalShards`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.python.asgi import shutdown_lifespans

from api.app import create_app
from api.auth import issue_token
from api.metrics import Message, Receive, Scope, Send
from api.revocation import InMemoryRevocations
from api.wiring import Stores
from engine.adapters.memory_accounts import InMemoryAccounts, InMemoryFailures
from engine.adapters.memory_sales import InMemorySales
from engine.adapters.memory_topups import InMemoryTopups
from engine.config import Settings
from engine.domain.commands import (
    BlockCar,
    ConfirmBooking,
    CreateEvent,
    Deposit,
    HoldCar,
    HoldTickets,
    RegisterCar,
    TierSpec,
)
from engine.projections.catalog_queries import CarPage, CarQuery, EventPage, EventQuery, Position
from tests.dates import starts_in
from tests.unit.api.conftest import SECRET, today
from tests.unit.api.test_bookings import FakeBookings, held
from tests.unit.api.test_wallets_api import FakeProvider
from tests.unit.local_shard import LocalInventory, local_inventory

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "12"))
RANDOM = os.environ.get("FUZZ_RANDOM", "") not in ("", "0")
CUSTOMER = "alice"
ADMIN = "root"
# What the catalog holds, by path parameter: the hook below swaps generated ids for these.
KNOWN: dict[str, list[str]] = {
    "event_id": ["e1", "free"],
    "car_id": ["c1"],
    "entity_id": ["e1", "c1"],
    "customer_id": [CUSTOMER, "bob"],
    "hold_id": ["h-alice", "h-bob", "h-car"],
    "block_id": ["b1"],
}
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


class NoLedger:
    """Money reads with an empty ledger (the statement's folding has tests of its own)."""

    async def statement(self, wallet_id: str, before_version: int, limit: int) -> list[Any]:
        return []

    async def pending_payments(self, customer_id: str) -> int:
        return 0


class EmptyCatalog:
    """A catalog with nothing in it: the fuzz reaches the catalog routes' validation, cursors and
    pages (the catalog's queries are tested on PostgreSQL in tests/integration/)."""

    async def search_events(self, query: EventQuery, limit: int, after: Position | None) -> EventPage:
        return EventPage([], None, None)

    async def search_cars(self, query: CarQuery, limit: int, after: Position | None) -> CarPage:
        return CarPage([], None, None)


class AppOnLocalShards:
    """The API (create_app) on in-process shards built at its first request other than the OpenAPI
    document, on the event loop that serves it (schemathesis's, in a thread of its own), and stopped
    when its lifespan ends. Why not at import: schemathesis's pytest integration loads the schema
    when this module is imported, and a run that skips these tests need not start shards."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        bookings = FakeBookings()
        bookings.add(held("h-alice", customer=CUSTOMER))
        bookings.add(held("h-bob", customer="bob", status="CONFIRMED"))
        stores = Stores(InMemoryAccounts(), InMemoryFailures(), InMemoryTopups(), NoLedger(), provider=FakeProvider())
        self.edge = create_app(
            settings,
            dependencies=[],
            bookings=bookings,
            revocations=InMemoryRevocations(),
            stores=stores,
            catalog=EmptyCatalog(),
            sales=InMemorySales(),
        )
        self.inventory: LocalInventory | None = None
        self._starting: asyncio.Lock | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.edge(scope, self._stopping_on_shutdown(receive), send)
            return
        if scope["type"] == "http" and scope["path"] != "/openapi.json" and self.inventory is None:
            self._starting = self._starting or asyncio.Lock()
            async with self._starting:
                if self.inventory is None:
                    self.inventory = await self._start()
                    self.edge.state.inventory = self.inventory.client
        await self.edge(scope, receive, send)

    def _stopping_on_shutdown(self, receive: Receive) -> Receive:
        async def lifespan_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown" and self.inventory is not None:
                await self.inventory.stop()
                self.inventory = None
            return message

        return lifespan_receive

    @staticmethod
    async def _start() -> LocalInventory:
        """Shards with the catalog of KNOWN: two events, a car with a hold and a block, bookings."""
        inventory = local_inventory()
        day = today()
        car_days = [day.fromordinal(day.toordinal() + n) for n in (10, 12, 20, 21)]
        tiers = (TierSpec("standard", 5_900, 50), TierSpec("vip", 14_900, 5))
        await inventory.client.execute_many(
            [
                CreateEvent("e1", "Nordic Lights", "Oslo Spektrum", starts_in(60), tiers, 8, 3_600_000),
                CreateEvent("free", "Open day", "Hall", starts_in(30), (TierSpec("gratis", 0, 100),)),
                RegisterCar("c1", "Volvo", "XC40", "Oslo", 7_900),
                Deposit(CUSTOMER, "d1", 1_000_000),
            ]
        )
        await inventory.client.execute_many(
            [
                HoldTickets("e1", "h-alice", CUSTOMER, (("standard", 2),), 600_000),
                HoldTickets("e1", "h-bob", "bob", (("vip", 1),), 600_000),
                HoldCar("c1", "h-car", CUSTOMER, car_days[0], car_days[1], 600_000),
                BlockCar("c1", "b1", car_days[2], car_days[3], "service"),
            ]
        )
        await inventory.client.execute(ConfirmBooking("e1", "event", "h-bob", "fuzz"))
        return inventory


APP = AppOnLocalShards(Settings(jwt_secret=SECRET, hold_ttl_s=600.0))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    """Half of the time, each id the catalog knows is replaced by one it holds."""
    choices = {
        name: st.one_of(st.just(value), st.sampled_from(KNOWN[name])) if name in KNOWN else st.just(value)
        for name, value in (path_parameters or {}).items()
    }
    return st.fixed_dictionaries(choices)


TIERS = ["standard", "vip", "gratis"]


@schema.hook
def flatmap_body(context: Any, body: Any) -> Any:
    """Half of the time, a hold names the catalog's tiers, or days a rental may take."""
    if not isinstance(body, dict):
        return st.just(body)
    if isinstance(body.get("quantities"), dict) and body["quantities"]:
        counts = list(body["quantities"].values())[: len(TIERS)]
        tiers = st.lists(st.sampled_from(TIERS), min_size=len(counts), max_size=len(counts), unique=True)
        named = tiers.map(lambda names: {**body, "quantities": dict(zip(names, counts, strict=False))})
        return st.one_of(st.just(body), named)
    if {"start", "end"} <= body.keys() and context.operation.path.endswith("/holds"):
        first = st.integers(min_value=0, max_value=40).map(lambda n: today().toordinal() + n)
        days = st.tuples(first, st.integers(min_value=1, max_value=5))
        dated = days.map(
            lambda d: {
                **body,
                "start": date.fromordinal(d[0]).isoformat(),
                "end": date.fromordinal(d[0] + d[1]).isoformat(),
            }
        )
        return st.one_of(st.just(body), dated)
    return st.just(body)


@pytest.fixture(scope="module", autouse=True)
def _stop_the_shards_after_the_module() -> Iterator[None]:
    yield
    shutdown_lifespans()


FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def call_as(case: Any, subject: str, *roles: str) -> None:
    token = issue_token(APP.settings, subject, roles)
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)


# The live notification stream answers until its token expires, so a generated call would not
# end: tests/unit/api/test_notifications_api.py covers it.
FUZZED = schema.exclude(path_regex=r"/notifications/stream$")


@FUZZED.parametrize()
@FUZZ
def test_every_operation_answers_a_customer_as_documented(case: Any) -> None:
    call_as(case, CUSTOMER, "customer")


@FUZZED.parametrize()
@FUZZ
def test_every_operation_answers_an_admin_as_documented(case: Any) -> None:
    call_as(case, ADMIN, "admin")
