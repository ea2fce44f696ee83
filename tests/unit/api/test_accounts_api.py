"""Accounts over HTTP: register, log in, use the access token on the existing routes, refresh,
reuse, log out, and the throttle's 429 (in-memory stores, in-process shards)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from api.app import create_app
from engine.config import Settings
from tests.unit.api.asgi_client import AsgiClient
from tests.unit.api.conftest import SECRET
from tests.unit.local_shard import local_inventory

PASSWORD = "correct horse battery"


@pytest.fixture
async def http() -> AsyncIterator[AsgiClient]:
    settings = Settings(
        jwt_secret=SECRET, argon2_time_cost=1, argon2_memory_kib=64, login_failures_per_account=3, access_token_ttl_s=60
    )
    inventory = local_inventory()
    yield AsgiClient(create_app(settings, dependencies=[], inventory=inventory.client))
    await inventory.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_log_in_and_use_the_token_on_the_existing_routes(http: AsgiClient) -> None:
    registered = await http.post("/auth/register", json={"login": "Ann@Example.com", "password": PASSWORD})
    assert registered.status == 201, registered.body
    customer = registered.json()["customer_id"]
    assert registered.json()["login"] == "ann@example.com"

    logged_in = await http.post("/auth/login", json={"login": "ann@example.com", "password": PASSWORD})
    assert logged_in.status == 200, logged_in.body
    session = logged_in.json()
    assert session["customer_id"] == customer
    assert 0 < session["expires_in"] <= 60
    wallet = await http.get(f"/wallets/{customer}", headers=bearer(session["access_token"]))
    assert (wallet.status, wallet.json()["balance"]) == (200, 0)
    other = await http.get("/wallets/alice", headers=bearer(session["access_token"]))
    assert other.status == 403


async def test_registration_refusals_have_their_own_codes(http: AsgiClient) -> None:
    weak = await http.post("/auth/register", json={"login": "bob", "password": "password123"})
    assert (weak.status, weak.json()["code"]) == (422, "weak-password")
    bad = await http.post("/auth/register", json={"login": "b", "password": PASSWORD})
    assert (bad.status, bad.json()["code"]) == (422, "invalid-login")
    assert (await http.post("/auth/register", json={"login": "bob", "password": PASSWORD})).status == 201
    taken = await http.post("/auth/register", json={"login": "BOB", "password": PASSWORD})
    assert (taken.status, taken.json()["code"]) == (409, "login-taken")
    nothing_said = await http.post("/auth/register", json={"login": "carl", "password": PASSWORD, "role": "admin"})
    assert nothing_said.status == 422, "no admin through a public route"


async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session_and_its_access_tokens(
    http: AsgiClient,
) -> None:
    await http.post("/auth/register", json={"login": "cleo", "password": PASSWORD})
    first = (await http.post("/auth/login", json={"login": "cleo", "password": PASSWORD})).json()
    second = await http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status == 200
    fresh = second.json()
    customer = fresh["customer_id"]
    assert (await http.get(f"/wallets/{customer}", headers=bearer(fresh["access_token"]))).status == 200

    stolen = await http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert (stolen.status, stolen.json()["code"]) == (401, "refresh-token-reused")
    refused = await http.get(f"/wallets/{customer}", headers=bearer(fresh["access_token"]))
    assert (refused.status, refused.json()["code"]) == (401, "token-revoked")
    after = await http.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert (after.status, after.json()["code"]) == (401, "refresh-token-revoked")


async def test_logout_revokes_the_refresh_token_and_the_access_token(http: AsgiClient) -> None:
    await http.post("/auth/register", json={"login": "dora", "password": PASSWORD})
    session = (await http.post("/auth/login", json={"login": "dora", "password": PASSWORD})).json()
    out = await http.post(
        "/auth/logout", json={"refresh_token": session["refresh_token"]}, headers=bearer(session["access_token"])
    )
    assert out.status == 204
    wallet = await http.get(f"/wallets/{session['customer_id']}", headers=bearer(session["access_token"]))
    assert wallet.status == 401
    again = await http.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert again.status == 401


async def test_failed_logins_are_answered_alike_then_throttled_with_retry_after(http: AsgiClient) -> None:
    await http.post("/auth/register", json={"login": "eve", "password": PASSWORD})
    for login in ("eve", "eve", "nobody"):
        wrong = await http.post("/auth/login", json={"login": login, "password": "not the password"})
        assert (wrong.status, wrong.json()["code"]) == (401, "invalid-credentials")
    wrong = await http.post("/auth/login", json={"login": "eve", "password": "not the password"})
    assert wrong.status == 401
    throttled = await http.post("/auth/login", json={"login": "eve", "password": PASSWORD})
    assert (throttled.status, throttled.json()["code"]) == (429, "too-many-attempts")
    assert 1 <= int(throttled.headers["retry-after"]) <= 900
