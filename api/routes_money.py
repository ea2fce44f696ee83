"""Money over HTTP: top-ups through the payment provider and its signed callback, withdrawals,
and a wallet's statement. (Admin credits stay `POST /wallets/{id}/deposits`, api/routes_inventory.py.)

- `POST /wallets/{id}/topups` (the customer): opens a top-up (engine/topups.py) and answers the
  provider's checkout address; the money arrives when the provider calls back.
- `POST /payments/callback` (the provider; no bearer token, the HMAC signature is the proof):
  credits the top-up named by the provider reference, once.
- `POST /wallets/{id}/withdrawals` (the customer): a `Withdraw` in the wallet, leaving the money
  of the customer's bookings that wait for payment (read from the bookings read model: see
  engine/domain/wallet.py for what "reserved" means here) and within the 24-hour limit.
- `GET /wallets/{id}/statement` (the customer or an admin): the ledger read model, newest first,
  a page at a time (`cursor` from the previous page's `next_cursor`). It follows the log about a
  second behind; its entries add up to the wallet's balance as of its newest entry.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import Field
from starlette.responses import Response

from api.auth import CurrentPrincipal
from api.errors import ApiProblem
from api.hold_keys import require_self_or_admin
from api.inventory import inventory_of
from api.responses import OrjsonResponse, iso_utc
from api.schemas import ID_PATTERN, Body, Id, problem_responses
from engine.config import Settings
from engine.domain.commands import Deposit, Withdraw
from engine.domain.results import Done
from engine.ports import MoneyReads, PaymentProvider, TopupStore
from engine.projections.ledger import Entry
from engine.signing import HEADER, BadSignature, verify
from engine.topups import Topup, check_amount, deposit_id

router = APIRouter(tags=["wallets"])

PathId = Annotated[str, Path(pattern=ID_PATTERN)]
NAMESPACE = uuid.UUID("5b0a5e57-2f0e-4e5c-9d59-1c7b3f7f0a11")
MAX_PAGE = 200
TOP_VERSION = 2**31 - 1


Amount = Annotated[int, Field(strict=True, ge=1, le=10**12)]


class TopupIn(Body):
    amount: Amount


class WithdrawalIn(Body):
    withdrawal_id: Id = Field(description="makes a retry harmless: the same id is paid out once")
    amount: Amount


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def callback_url(settings: Settings) -> str:
    """Where the provider calls back: this API, as this machine reaches it."""
    host = "127.0.0.1" if settings.api_host in ("", "0.0.0.0", "::") else settings.api_host
    return f"http://{host}:{settings.api_port}/payments/callback"


def topup_body(topup: Topup) -> dict[str, Any]:
    return {
        "topup_id": topup.topup_id,
        "customer_id": topup.customer_id,
        "amount": topup.amount,
        "status": topup.status,
        "provider_ref": topup.provider_ref,
        "checkout_url": topup.checkout_url,
    }


# ---- top-ups -------------------------------------------------------------------------------------
@router.post(
    "/wallets/{customer_id}/topups",
    summary="Top up a wallet through the payment provider (its owner): answers the checkout to pay at",
    status_code=201,
    responses=problem_responses(401, 403, 409, 422, 503),
)
async def open_topup(
    customer_id: PathId,
    body: TopupIn,
    principal: CurrentPrincipal,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=128)] = None,
) -> Response:
    """The same Idempotency-Key gives the same top-up (and checkout) back; without one, each call
    opens a new top-up."""
    require_self_or_admin(principal, customer_id)
    settings = _settings(request)
    check_amount(body.amount, settings.topup_min_amount, settings.topup_max_amount)
    key = idempotency_key or uuid.uuid4().hex
    topup_id = str(uuid.uuid5(NAMESPACE, f"{customer_id}/{key}"))
    topups: TopupStore = request.app.state.topups
    now = time.time_ns() // 1_000_000
    topup = await topups.open(Topup(topup_id, customer_id, body.amount, created_at_ms=now), settings.topup_daily_limit)
    if not topup.provider_ref:
        provider: PaymentProvider = request.app.state.provider
        checkout = await provider.create_checkout(topup, callback_url(settings))
        await topups.checkout(topup_id, checkout.provider_ref, checkout.checkout_url)
        topup = await topups.get(topup_id) or topup
    return OrjsonResponse(topup_body(topup), status_code=201)


@router.get(
    "/wallets/{customer_id}/topups/{topup_id}",
    summary="A top-up and its state: PENDING until the provider's callback, then CREDITED",
    responses=problem_responses(401, 403, 404, 503),
)
async def read_topup(customer_id: PathId, topup_id: PathId, principal: CurrentPrincipal, request: Request) -> Response:
    require_self_or_admin(principal, customer_id)
    topup = await request.app.state.topups.get(topup_id)
    if topup is None or topup.customer_id != customer_id:
        raise ApiProblem(404, "topup-not-found", "Not found", f"there is no top-up {topup_id}")
    return OrjsonResponse(topup_body(topup))


@router.post(
    "/payments/callback",
    tags=["payments"],
    summary="The payment provider's signed callback (HMAC over the body in Rezerv-Signature)",
    responses=problem_responses(400, 401, 404, 422, 503),
)
async def provider_callback(request: Request) -> Response:
    """Refused unless the signature over the raw body checks out with the provider's secret and
    its time is within REZERV_CALLBACK_TOLERANCE_S; the same callback again (a retry, a replay
    inside that window) credits nothing more: the wallet credits a provider reference once."""
    settings = _settings(request)
    raw = await request.body()
    try:
        verify(settings.provider_secret, request.headers.get(HEADER), raw, time.time(), settings.callback_tolerance_s)
    except BadSignature as exc:
        raise ApiProblem(401, exc.code, "Bad signature", exc.detail) from None
    try:
        event = orjson.loads(raw)
        kind, ref, customer, amount = event["type"], event["provider_ref"], event["customer_id"], event["amount"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise ApiProblem(422, "callback-malformed", "Malformed callback", "not a provider event") from None
    if kind != "topup.succeeded":
        return OrjsonResponse({"ignored": kind})
    topups: TopupStore = request.app.state.topups
    topup = await topups.by_provider_ref(str(ref))
    if topup is None:
        raise ApiProblem(404, "topup-not-found", "Not found", f"no top-up has the provider reference {ref}")
    if (topup.customer_id, topup.amount) != (customer, amount):
        raise ApiProblem(422, "callback-mismatch", "Callback mismatch", "the callback's customer or amount differ")
    inventory = await inventory_of(request.app)
    done = await inventory.execute_as(
        Deposit(topup.customer_id, deposit_id(topup.provider_ref), topup.amount, "topup", topup.provider_ref), Done
    )
    await topups.credited(topup.topup_id, time.time_ns() // 1_000_000)
    return OrjsonResponse({"topup_id": topup.topup_id, "credited": True, "changed": done.changed})


# ---- withdrawals -------------------------------------------------------------------------------
@router.post(
    "/wallets/{customer_id}/withdrawals",
    summary="Withdraw money (its owner): never below zero nor below what pending bookings need",
    status_code=201,
    responses=problem_responses(401, 403, 409, 422, 503),
)
async def withdraw(customer_id: PathId, body: WithdrawalIn, principal: CurrentPrincipal, request: Request) -> Response:
    require_self_or_admin(principal, customer_id)
    settings = _settings(request)
    if body.amount < settings.withdrawal_min_amount:
        raise ApiProblem(422, "withdrawal-too-small", "Too small", f"the least is {settings.withdrawal_min_amount}")
    reads: MoneyReads = request.app.state.money_reads
    reserved = await reads.pending_payments(customer_id)
    inventory = await inventory_of(request.app)
    done = await inventory.execute_as(
        Withdraw(customer_id, body.withdrawal_id, body.amount, reserved, settings.withdrawal_daily_limit), Done
    )
    body_out = {"withdrawal_id": body.withdrawal_id, "amount": done.amount, "status": done.status}
    return OrjsonResponse(
        body_out | {"reserved": reserved, "changed": done.changed}, status_code=201 if done.changed else 200
    )


# ---- the statement -----------------------------------------------------------------------------
def encode_cursor(version: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{version}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        version = int(number)
    except (ValueError, UnicodeDecodeError):
        version, prefix = 0, ""
    if prefix != "v1" or not 1 <= version <= TOP_VERSION:
        raise ApiProblem(422, "invalid-cursor", "Invalid cursor", "the cursor is not one this API gave")
    return version


def entry_body(e: Entry) -> dict[str, Any]:
    return {
        "kind": e.kind,
        "reference": e.reference,
        "amount": e.amount,
        "balance": e.balance,
        "at": iso_utc(e.at),
        "detail": e.detail,
    }


@router.get(
    "/wallets/{customer_id}/statement",
    summary="Every deposit, charge, refund and withdrawal with the balance after it, newest first",
    responses=problem_responses(401, 403, 422, 503),
)
async def read_statement(
    customer_id: PathId,
    principal: CurrentPrincipal,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    require_self_or_admin(principal, customer_id)
    before = decode_cursor(cursor) if cursor else TOP_VERSION
    reads: MoneyReads = request.app.state.money_reads
    entries = await reads.statement(customer_id, before, limit + 1)
    page, more = entries[:limit], len(entries) > limit
    return OrjsonResponse(
        {
            "wallet_id": customer_id,
            "entries": [entry_body(e) for e in page],
            "next_cursor": encode_cursor(page[-1].version) if more else None,
        }
    )
