"""A payment provider for local use, run by `rezerv up` (python -m stack.local_provider).

It stands in for a card processor: rezerv asks it for a checkout of a top-up (a request signed
with the shared secret, REZERV_PROVIDER_SECRET), the customer "pays" by posting to the checkout
address (no card needed: this is the local stand-in), and the provider then calls rezerv back
with a signed `topup.succeeded` body, retrying with backoff until rezerv answers 2xx (or gives
up after a few tries, as real providers do after days). Its reference for a top-up is derived
from the top-up id, so asking twice gives the same checkout. State lives in memory: a restart
forgets the checkouts not paid yet (ask for the top-up again).

    POST /topups                      {topup_id, customer_id, amount, callback_url} -> {provider_ref, checkout_url}
    GET  /checkout/{provider_ref}     the checkout and its state
    POST /checkout/{provider_ref}/pay pay it: the signed callback goes to rezerv
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.signing import HEADER, BadSignature, sign, verify

log = logging.getLogger("rezerv.local_provider")
CALLBACK_ATTEMPTS = 5


@dataclass
class Checkout:
    provider_ref: str
    topup_id: str
    customer_id: str
    amount: int
    callback_url: str
    status: str = "OPEN"  # OPEN, PAID (callback acknowledged) or CALLBACK_FAILED
    callback_attempts: int = 0


def create_app(secret: str, public_url: str) -> Starlette:
    checkouts: dict[str, Checkout] = {}

    async def topups(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            verify(secret, request.headers.get(HEADER), body, time.time())
        except BadSignature as exc:
            return JSONResponse({"error": exc.code}, status_code=401)
        data = json.loads(body)
        ref = "lp_" + hashlib.sha256(data["topup_id"].encode()).hexdigest()[:20]
        checkouts.setdefault(
            ref, Checkout(ref, data["topup_id"], data["customer_id"], int(data["amount"]), data["callback_url"])
        )
        return JSONResponse({"provider_ref": ref, "checkout_url": f"{public_url}/checkout/{ref}"})

    async def show(request: Request) -> JSONResponse:
        checkout = checkouts.get(request.path_params["ref"])
        return JSONResponse(asdict(checkout)) if checkout else JSONResponse({"error": "unknown"}, status_code=404)

    async def pay(request: Request) -> JSONResponse:
        checkout = checkouts.get(request.path_params["ref"])
        if checkout is None:
            return JSONResponse({"error": "unknown"}, status_code=404)
        if checkout.status != "PAID":
            checkout.status = "PAID" if await send_callback(checkout, secret) else "CALLBACK_FAILED"
        return JSONResponse(asdict(checkout))

    return Starlette(
        routes=[
            Route("/topups", topups, methods=["POST"]),
            Route("/checkout/{ref}", show, methods=["GET"]),
            Route("/checkout/{ref}/pay", pay, methods=["POST"]),
        ]
    )


def callback_body(checkout: Checkout) -> bytes:
    return json.dumps(
        {
            "type": "topup.succeeded",
            "event_id": f"{checkout.provider_ref}:succeeded",
            "provider_ref": checkout.provider_ref,
            "topup_id": checkout.topup_id,
            "customer_id": checkout.customer_id,
            "amount": checkout.amount,
        }
    ).encode()


async def send_callback(checkout: Checkout, secret: str, first_delay_s: float = 0.2) -> bool:
    """POST the signed callback until rezerv answers 2xx; False after CALLBACK_ATTEMPTS tries."""
    body = callback_body(checkout)
    delay = first_delay_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for _ in range(CALLBACK_ATTEMPTS):
            checkout.callback_attempts += 1
            headers = {"content-type": "application/json", HEADER: sign(secret, body, time.time())}
            try:
                async with session.post(checkout.callback_url, data=body, headers=headers) as response:
                    if 200 <= response.status < 300:
                        return True
                    log.warning("callback for %s answered %d", checkout.provider_ref, response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("callback for %s failed: %r", checkout.provider_ref, exc)
            await asyncio.sleep(delay)
            delay *= 2
    return False


def main() -> None:  # pragma: no cover - run by `rezerv up`
    import uvicorn

    from engine.config import Settings

    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level)
    app: Any = create_app(
        settings.provider_secret or os.environ.get("REZERV_PROVIDER_SECRET", ""), settings.provider_url
    )
    uvicorn.run(app, host="127.0.0.1", port=settings.provider_port, log_level="warning")


if __name__ == "__main__":
    main()
