"""Wallets over HTTP: admin credits with a reason (customers may not credit themselves), top-ups
through the provider and its signed callback (tampered, unsigned, stale or replayed callbacks
change nothing), withdrawals (never below zero nor below pending bookings, never overdrawn by
many at once), and the statement with its cursor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson
import pytest

from api.app import create_app
from api.wiring import Stores
from engine.adapters.memory_accounts import InMemoryAccounts, InMemoryFailures
from engine.adapters.memory_store import InMemoryEventStore
from engine.adapters.memory_topups import InMemoryTopups
from engine.config import Settings
from engine.log import LoggedEvent
from engine.projections.ledger import Entry, entries, plan
from engine.signing import HEADER, sign
from engine.topups import Checkout, Topup
from tests.unit.api.asgi_client import AsgiClient, Reply
from tests.unit.api.conftest import SECRET, bearer
from tests.unit.api.test_auth_and_validation import assert_problem
from tests.unit.local_shard import LocalInventory, local_inventory

PROVIDER_SECRET = "provider-secret-for-tests"


@dataclass
class FakeProvider:
    checkouts: dict[str, Topup] = field(default_factory=dict)

    async def create_checkout(self, topup: Topup, callback_url: str) -> Checkout:
        ref = f"ref-{topup.topup_id[:8]}"
        self.checkouts[ref] = topup
        return Checkout(ref, f"http://provider/checkout/{ref}")


@dataclass
class StoreReads:
    """Money reads over the in-process event store: the statement folded from the wallet's stream
    as the ledger projection would, and the bookings waiting for payment as set by the test."""

    store: InMemoryEventStore
    pending: dict[str, int] = field(default_factory=dict)

    async def statement(self, wallet_id: str, before_version: int, limit: int) -> list[Entry]:
        stream = f"wallet/{wallet_id}"
        logged = [
            LoggedEvent(stream, e.version, e.event_type, e.data, e.version, e.version, 0)
            for e in await self.store.load(stream)
        ]
        rows = [e for e in entries(plan(logged), {}) if e.version < before_version]
        return list(reversed(rows))[:limit]

    async def pending_payments(self, customer_id: str) -> int:
        return self.pending.get(customer_id, 0)


@dataclass
class Wallets:
    http: AsgiClient
    inventory: LocalInventory
    reads: StoreReads
    provider: FakeProvider
    settings: Settings

    def who(self, subject: str, *roles: str) -> dict[str, str]:
        return bearer(self.settings, subject, *roles)

    async def credit(self, customer: str, amount: int, deposit_id: str = "d1") -> Reply:
        body = {"deposit_id": deposit_id, "amount": amount, "reason": "goodwill"}
        return await self.http.post(f"/wallets/{customer}/deposits", json=body, headers=self.who("root", "admin"))

    async def balance(self, customer: str) -> int:
        reply = await self.http.get(f"/wallets/{customer}", headers=self.who("root", "admin"))
        return int(reply.json()["balance"])

    async def callback(
        self,
        body: dict[str, object],
        *,
        secret: str = PROVIDER_SECRET,
        at: float | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        data = raw if raw is not None else orjson.dumps(body)
        signature = sign(secret, orjson.dumps(body), time.time() if at is None else at)
        return await self.http.post(
            "/payments/callback", content=data, headers={HEADER: signature, "content-type": "application/json"}
        )


@pytest.fixture
async def w() -> AsyncIterator[Wallets]:
    settings = Settings(
        jwt_secret=SECRET,
        provider_secret=PROVIDER_SECRET,
        topup_min_amount=100,
        topup_max_amount=50_000,
        topup_daily_limit=60_000,
        withdrawal_daily_limit=100_000,
    )
    inventory = local_inventory()
    reads, provider = StoreReads(inventory.store), FakeProvider()
    stores = Stores(InMemoryAccounts(), InMemoryFailures(), InMemoryTopups(), reads, provider=provider)
    app = create_app(settings, dependencies=[], inventory=inventory.client, stores=stores)
    yield Wallets(AsgiClient(app), inventory, reads, provider, settings)
    await inventory.stop()


# ---- admin credits ---------------------------------------------------------------------------------
async def test_an_admin_credits_a_wallet_with_a_reason_that_is_recorded(w: Wallets) -> None:
    first = await w.credit("alice", 5_000)
    assert first.status == 201
    assert first.json() == {"entity_id": "alice", "ref": "d1", "status": "DEPOSITED", "amount": 5000, "changed": True}
    assert (await w.credit("alice", 5_000)).json()["changed"] is False
    assert_problem(await w.credit("alice", 6_000), 422, "idempotency-conflict")
    statement = await w.http.get("/wallets/alice/statement", headers=w.who("alice"))
    [entry] = statement.json()["entries"]
    assert (entry["kind"], entry["amount"], entry["balance"]) == ("deposit", 5_000, 5_000)
    assert entry["detail"] == "admin: goodwill (by root)"


async def test_a_customer_cannot_credit_its_own_wallet_nor_without_a_reason(w: Wallets) -> None:
    own = await w.http.post(
        "/wallets/alice/deposits", json={"deposit_id": "d", "amount": 10**12, "reason": "me"}, headers=w.who("alice")
    )
    assert_problem(own, 403, "admin-required")
    reasonless = await w.http.post(
        "/wallets/alice/deposits", json={"deposit_id": "d", "amount": 1}, headers=w.who("root", "admin")
    )
    assert_problem(reasonless, 422, "invalid-request")
    assert await w.balance("alice") == 0


# ---- top-ups ---------------------------------------------------------------------------------------
async def open_topup(w: Wallets, customer: str, amount: int, key: str = "k1") -> Reply:
    return await w.http.post(
        f"/wallets/{customer}/topups", json={"amount": amount}, headers=w.who(customer) | {"Idempotency-Key": key}
    )


def succeeded(topup: dict[str, object]) -> dict[str, object]:
    return {
        "type": "topup.succeeded",
        "event_id": f"{topup['provider_ref']}:succeeded",
        "provider_ref": topup["provider_ref"],
        "topup_id": topup["topup_id"],
        "customer_id": topup["customer_id"],
        "amount": topup["amount"],
    }


async def test_a_topup_is_credited_only_by_the_providers_signed_callback_and_only_once(w: Wallets) -> None:
    opened = await open_topup(w, "alice", 2_500)
    assert opened.status == 201, opened.body
    topup = opened.json()
    assert (topup["status"], topup["checkout_url"]) == ("PENDING", f"http://provider/checkout/{topup['provider_ref']}")
    assert (await open_topup(w, "alice", 2_500)).json()["topup_id"] == topup["topup_id"], "same key, same top-up"
    assert await w.balance("alice") == 0, "nothing before the provider says it was paid"

    event = succeeded(topup)
    credited = await w.callback(event)
    assert credited.status == 200, credited.body
    assert credited.json()["changed"] is True
    assert await w.balance("alice") == 2_500
    again = await w.callback(event)  # the provider retrying, or a replay inside the tolerance
    assert (again.status, again.json()["changed"]) == (200, False)
    assert await w.balance("alice") == 2_500
    state = await w.http.get(f"/wallets/alice/topups/{topup['topup_id']}", headers=w.who("alice"))
    assert state.json()["status"] == "CREDITED"
    [entry] = (await w.http.get("/wallets/alice/statement", headers=w.who("alice"))).json()["entries"]
    assert (entry["kind"], entry["reference"], entry["detail"]) == (
        "deposit",
        f"topup-{topup['provider_ref']}",
        f"topup: {topup['provider_ref']}",
    )


async def test_callbacks_that_are_unsigned_tampered_stale_or_for_no_topup_change_nothing(w: Wallets) -> None:
    topup = (await open_topup(w, "bob", 1_000)).json()
    event = succeeded(topup)
    unsigned = await w.http.post("/payments/callback", json=event)
    assert_problem(unsigned, 401, "signature-missing")
    tampered = await w.callback(event, raw=orjson.dumps(event | {"amount": 1_000_000}))
    assert_problem(tampered, 401, "signature-invalid")
    forged = await w.callback(event, secret="a guess")
    assert_problem(forged, 401, "signature-invalid")
    stale = await w.callback(event, at=time.time() - 3600)
    assert_problem(stale, 401, "signature-expired")
    mismatched = await w.callback(event | {"amount": 999})
    assert_problem(mismatched, 422, "callback-mismatch")
    unknown = await w.callback(event | {"provider_ref": "never-issued"})
    assert_problem(unknown, 404, "topup-not-found")
    assert await w.balance("bob") == 0


async def test_topup_amounts_and_the_daily_limit_are_enforced(w: Wallets) -> None:
    assert_problem(await open_topup(w, "carl", 99), 422, "topup-refused")
    assert_problem(await open_topup(w, "carl", 50_001), 422, "topup-refused")
    assert (await open_topup(w, "carl", 50_000, "a")).status == 201
    assert_problem(await open_topup(w, "carl", 10_001, "b"), 409, "topup-limit")
    assert (await open_topup(w, "carl", 10_000, "c")).status == 201
    other = await w.http.post("/wallets/carl/topups", json={"amount": 500}, headers=w.who("dave"))
    assert_problem(other, 403, "not-your-wallet")


# ---- withdrawals -------------------------------------------------------------------------------------
async def withdraw(w: Wallets, customer: str, amount: int, withdrawal_id: str) -> Reply:
    return await w.http.post(
        f"/wallets/{customer}/withdrawals",
        json={"withdrawal_id": withdrawal_id, "amount": amount},
        headers=w.who(customer),
    )


async def test_a_withdrawal_leaves_what_pending_bookings_need(w: Wallets) -> None:
    await w.credit("erin", 10_000)
    w.reads.pending["erin"] = 3_000
    refused = await withdraw(w, "erin", 7_001, "x1")
    assert_problem(refused, 409, "insufficient-funds")
    done = await withdraw(w, "erin", 7_000, "x1")
    assert (done.status, done.json()["reserved"]) == (201, 3_000)
    assert (await withdraw(w, "erin", 7_000, "x1")).status == 200, "a retry pays out nothing more"
    assert await w.balance("erin") == 3_000
    entries_ = (await w.http.get("/wallets/erin/statement", headers=w.who("erin"))).json()["entries"]
    assert [(e["kind"], e["amount"], e["balance"]) for e in entries_] == [
        ("withdrawal", -7_000, 3_000),
        ("deposit", 10_000, 10_000),
    ]


async def test_many_withdrawals_at_once_never_overdraw(w: Wallets) -> None:
    await w.credit("fay", 10_000)
    replies = await asyncio.gather(*(withdraw(w, "fay", 700, f"x{i}") for i in range(30)))
    paid = [r for r in replies if r.status == 201]
    assert len(paid) == 14
    assert all(r.status == 409 for r in replies if r.status != 201)
    assert await w.balance("fay") == 10_000 - 14 * 700


# ---- the statement --------------------------------------------------------------------------------------
async def test_the_statement_pages_back_with_a_cursor_and_adds_up(w: Wallets) -> None:
    for i in range(7):
        await w.credit("gus", 100 * (i + 1), f"d{i}")
    await withdraw(w, "gus", 500, "x")
    seen: list[dict[str, object]] = []
    cursor = None
    while True:
        query = f"?limit=3&cursor={cursor}" if cursor else "?limit=3"
        page = (await w.http.get(f"/wallets/gus/statement{query}", headers=w.who("gus"))).json()
        seen += page["entries"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 8
    assert sum(int(str(e["amount"])) for e in seen) == await w.balance("gus") == seen[0]["balance"]
    assert_problem(await w.http.get("/wallets/gus/statement?cursor=bogus", headers=w.who("gus")), 422, "invalid-cursor")
    assert_problem(await w.http.get("/wallets/gus/statement", headers=w.who("hal")), 403, "not-your-wallet")
