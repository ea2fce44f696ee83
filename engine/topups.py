"""Top-ups: money enters a wallet only when a payment provider says it was paid.

A customer asks for a top-up (`POST /wallets/{id}/topups`): the API records it PENDING here,
asks the provider (behind the `PaymentProvider` port) for a checkout, and returns the checkout's
address. The customer pays there; the provider then calls back (`POST /payments/callback`) with
a body signed by HMAC (engine/signing.py). Only a callback whose signature checks out, whose
time is within REZERV_CALLBACK_TOLERANCE_S and whose provider reference, customer and amount are
those of a recorded top-up credits the wallet: a `Deposit` whose id is the provider reference,
so the wallet credits a reference once however often the callback comes (a provider retrying,
or a replay within the tolerance). Amounts are limited per top-up and per customer per 24 hours
(REZERV_TOPUP_*), checked when a top-up is opened, before any money is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.errors import DomainError

PENDING = "PENDING"
CREDITED = "CREDITED"
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topup:
    topup_id: str
    customer_id: str
    amount: int
    status: str = PENDING
    provider_ref: str = ""
    checkout_url: str = ""
    created_at_ms: int = 0


class TopupRefused(DomainError):
    code = "topup-refused"


class TopupLimit(DomainError):
    code = "topup-limit"


def deposit_id(provider_ref: str) -> str:
    """The wallet deposit of a top-up: its provider reference is what makes the credit idempotent."""
    return f"topup-{provider_ref}"


def check_amount(amount: int, minimum: int, maximum: int) -> None:
    if type(amount) is not int or not minimum <= amount <= maximum:
        raise TopupRefused(f"a top-up is from {minimum} to {maximum} (minor units), not {amount!r}")


def over_daily_limit(recent: list[tuple[int, int]], amount: int, limit: int, now_ms: int) -> int | None:
    """What is left of the 24-hour limit if `amount` would pass it, given the (amount, created at)
    of the customer's top-ups; None if it fits."""
    used = sum(a for a, at in recent if at > now_ms - DAY_MS)
    return None if used + amount <= limit else max(0, limit - used)


@dataclass(frozen=True)
class Checkout:
    provider_ref: str
    checkout_url: str
