"""Token lifetime, revocation and what a refused token is told: a stable code and a plain
sentence, never the JWT library's message."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import jwt
import pytest

from api.app import create_app
from api.auth import ALGORITHM, issue_token
from api.revocation import InMemoryRevocations
from engine.config import Settings
from tests.unit.api.asgi_client import AsgiClient
from tests.unit.api.conftest import Api, bearer
from tests.unit.api.test_auth_and_validation import assert_problem
from tests.unit.local_shard import local_inventory


@pytest.fixture
async def app_with_store(settings: Settings) -> AsyncIterator[tuple[AsgiClient, InMemoryRevocations]]:
    inventory = local_inventory()
    store = InMemoryRevocations()
    app = create_app(settings, dependencies=[], inventory=inventory.client, revocations=store)
    yield AsgiClient(app), store
    await inventory.stop()


def forge(settings: Settings, **claims: object) -> str:
    now = int(time.time())
    base: dict[str, object] = {"sub": "alice", "roles": ["customer"], "aud": settings.jwt_audience, "iat": now}
    base.update({"exp": now + 60, "jti": "j1"})
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, settings.jwt_secret, algorithm=ALGORITHM)


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("not.a.jwt", "token-invalid"),
        ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", "token-invalid"),
    ],
)
async def test_a_malformed_token_gets_a_code_and_no_library_text(api: Api, token: str, code: str) -> None:
    reply = await api.http.get("/wallets/alice", headers={"Authorization": f"Bearer {token}"})
    body = assert_problem(reply, 401, code)
    assert body["detail"] == "The token is not valid."
    assert reply.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"exp": int(time.time()) - 10}, "token-expired"),
        ({"jti": None}, "token-invalid"),
        ({"iat": None}, "token-invalid"),
        ({"aud": "someone-else"}, "token-invalid"),
        ({"roles": "admin"}, "token-invalid"),
        ({"exp": int(time.time()) + 10 * 86400}, "token-lifetime-too-long"),
    ],
)
async def test_a_refused_token_is_named_by_a_stable_code(api: Api, claims: dict[str, object], code: str) -> None:
    reply = await api.http.get("/wallets/alice", headers={"Authorization": f"Bearer {forge(api.settings, **claims)}"})
    body = assert_problem(reply, 401, code)
    for library_word in ("Signature", "audience", "claim", "Token", "jwt"):
        assert library_word not in body["detail"]


def test_no_token_is_issued_beyond_the_lifetime_cap() -> None:
    settings = Settings(jwt_secret="s" * 32, token_max_ttl_s=600)
    issue_token(settings, "alice", ttl_s=600)
    with pytest.raises(ValueError, match="REZERV_TOKEN_MAX_TTL_S"):
        issue_token(settings, "alice", ttl_s=601)


async def test_a_revoked_token_is_refused_at_once_by_the_worker_that_revoked_it(
    settings: Settings, app_with_store: tuple[AsgiClient, InMemoryRevocations]
) -> None:
    http, store = app_with_store
    alice = issue_token(settings, "alice")
    alice_id = jwt.decode(alice, options={"verify_signature": False})["jti"]
    assert (await http.get("/wallets/alice", headers={"Authorization": f"Bearer {alice}"})).status == 200
    admin = bearer(settings, "root", "admin")
    reply = await http.post("/tokens/revocations", json={"token_id": alice_id, "reason": "leaked"}, headers=admin)
    assert reply.status == 201, reply.body
    assert reply.json() == {"token_id": alice_id, "revoked": True, "changed": True}
    assert alice_id in await store.active()
    refused = await http.get("/wallets/alice", headers={"Authorization": f"Bearer {alice}"})
    assert_problem(refused, 401, "token-revoked")
    again = await http.post("/tokens/revocations", json={"token_id": alice_id}, headers=admin)
    assert (again.status, again.json()["changed"]) == (200, False)


async def test_only_an_admin_may_revoke(
    settings: Settings, app_with_store: tuple[AsgiClient, InMemoryRevocations]
) -> None:
    http, store = app_with_store
    reply = await http.post("/tokens/revocations", json={"token_id": "abc"}, headers=bearer(settings, "alice"))
    assert_problem(reply, 403, "admin-required")
    assert await store.active() == set()
