"""Wallets over HTTP: idempotent deposits, balances, and only the owner or an admin."""

from __future__ import annotations

from tests.unit.api.conftest import Api
from tests.unit.api.test_auth_and_validation import assert_problem


async def test_deposit_and_balance(api: Api) -> None:
    first = await api.http.post("/wallets/alice/deposits", json={"deposit_id": "d1", "amount": 5000}, headers=api.admin)
    assert first.status == 201
    assert first.json() == {"entity_id": "alice", "ref": "d1", "status": "DEPOSITED", "amount": 5000, "changed": True}
    repeat = await api.http.post(
        "/wallets/alice/deposits", json={"deposit_id": "d1", "amount": 5000}, headers=api.admin
    )
    assert repeat.status == 200
    assert repeat.json()["changed"] is False
    own = await api.http.post("/wallets/alice/deposits", json={"deposit_id": "d2", "amount": 700}, headers=api.alice)
    assert own.status == 201
    wallet = await api.http.get("/wallets/alice", headers=api.alice)
    assert wallet.status == 200
    assert wallet.json()["balance"] == 5700
    assert wallet.json()["deposits"] == 2


async def test_same_deposit_id_with_another_amount_is_422(api: Api) -> None:
    body = {"deposit_id": "d1", "amount": 5000}
    assert (await api.http.post("/wallets/alice/deposits", json=body, headers=api.admin)).status == 201
    reply = await api.http.post("/wallets/alice/deposits", json={**body, "amount": 6000}, headers=api.admin)
    assert_problem(reply, 422, "idempotency-conflict")
    assert (await api.http.get("/wallets/alice", headers=api.admin)).json()["balance"] == 5000


async def test_a_new_wallet_is_empty(api: Api) -> None:
    wallet = await api.http.get("/wallets/bob", headers=api.bob)
    assert wallet.status == 200
    assert wallet.json()["balance"] == 0


async def test_only_the_owner_or_an_admin(api: Api) -> None:
    deposit = await api.http.post("/wallets/alice/deposits", json={"deposit_id": "d1", "amount": 1}, headers=api.bob)
    assert_problem(deposit, 403, "not-your-wallet")
    assert_problem(await api.http.get("/wallets/alice", headers=api.bob), 403, "not-your-wallet")
    assert (await api.http.get("/wallets/alice", headers=api.admin)).json()["balance"] == 0


async def test_amounts_are_positive_integers(api: Api) -> None:
    for amount in (0, -5, 10.0, "10", True, 10**12 + 1):
        reply = await api.http.post(
            "/wallets/alice/deposits", json={"deposit_id": "d1", "amount": amount}, headers=api.admin
        )
        assert_problem(reply, 422, "invalid-request")
