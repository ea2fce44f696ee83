"""The payment provider over HTTP (aiohttp): asks it for a checkout, signing the request with the
shared secret so the provider knows it comes from rezerv. The local provider `rezerv up` runs
(stack/local_provider.py) speaks this; a real provider would get an adapter of its own."""

from __future__ import annotations

import json
import time

import aiohttp

from engine.domain.errors import TransientError
from engine.signing import HEADER, sign
from engine.topups import Checkout, Topup


class ProviderUnavailable(TransientError):
    code = "provider-unavailable"


class HttpProvider:
    def __init__(self, base_url: str, secret: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def create_checkout(self, topup: Topup, callback_url: str) -> Checkout:
        if not self.base_url:
            raise ProviderUnavailable("no payment provider is configured (REZERV_PROVIDER_URL)")
        body = json.dumps(
            {
                "topup_id": topup.topup_id,
                "customer_id": topup.customer_id,
                "amount": topup.amount,
                "callback_url": callback_url,
            }
        ).encode()
        headers = {"content-type": "application/json", HEADER: sign(self.secret, body, time.time())}
        try:
            async with (
                aiohttp.ClientSession(timeout=self.timeout) as session,
                session.post(f"{self.base_url}/topups", data=body, headers=headers) as response,
            ):
                if response.status != 200:
                    raise ProviderUnavailable(f"the provider answered {response.status}")
                answer = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(f"the provider is not reachable: {type(exc).__name__}") from exc
        return Checkout(str(answer["provider_ref"]), str(answer["checkout_url"]))
