"""A top-up end to end over real HTTP: the API and the local payment provider (the one `rezerv up`
runs) each served by uvicorn on a free port; the provider's signed callback credits the wallet."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import uvicorn

from api.app import create_app
from api.auth import issue_token
from engine.config import Settings
from stack.local_provider import create_app as provider_app
from stack.processes import free_port
from tests.unit.local_shard import local_inventory

SECRET = "jwt-secret-for-the-provider-test-0123"


@contextlib.asynccontextmanager
async def serving(app: Any, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # uvicorn has no event for "listening"
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def urls() -> AsyncIterator[tuple[str, str, Settings]]:
    api_port, provider_port = free_port(), free_port()
    provider_url = f"http://127.0.0.1:{provider_port}"
    settings = Settings(
        jwt_secret=SECRET, api_port=api_port, provider_url=provider_url, provider_secret="shared-provider-secret"
    )
    inventory = local_inventory()
    api = create_app(settings, dependencies=[], inventory=inventory.client)
    async with serving(api, api_port), serving(provider_app("shared-provider-secret", provider_url), provider_port):
        yield f"http://127.0.0.1:{api_port}", provider_url, settings
    await inventory.stop()


async def test_paying_at_the_local_providers_checkout_credits_the_wallet_once(urls: tuple[str, str, Settings]) -> None:
    api, provider, settings = urls
    ann = {"Authorization": f"Bearer {issue_token(settings, 'ann')}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api}/wallets/ann/topups", json={"amount": 4_200}, headers=ann) as r:
            assert r.status == 201, await r.text()
            topup = await r.json()
        assert topup["checkout_url"].startswith(provider)
        async with http.post(topup["checkout_url"] + "/pay") as r:
            paid = await r.json()
        assert (paid["status"], paid["callback_attempts"]) == ("PAID", 1)
        async with http.post(topup["checkout_url"] + "/pay") as r:
            assert (await r.json())["callback_attempts"] == 1, "paid once"
        async with http.get(f"{api}/wallets/ann", headers=ann) as r:
            assert (await r.json())["balance"] == 4_200
        async with http.get(f"{api}/wallets/ann/topups/{topup['topup_id']}", headers=ann) as r:
            assert (await r.json())["status"] == "CREDITED"
        # The provider refuses a checkout request that rezerv did not sign.
        async with http.post(f"{provider}/topups", json={"topup_id": "x", "customer_id": "ann", "amount": 1}) as r:
            assert r.status == 401
