"""What a hold request becomes (an engine command) and what its answer looks like.

Shared by the FastAPI routes (api/routes_inventory.py) and the hot path (api/hot_routes.py), so
the rules of a hold are written once: who the hold is for, the Idempotency-Key and the hold id
derived from it, the default time-to-live, the booking horizon of a rental, and the body of a
granted hold.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.auth import Principal
from api.dates import check_rental
from api.hold_keys import acting_customer, hold_id_for, require_idempotency_key
from api.responses import iso_utc
from api.schemas import HoldCarIn, HoldTicketsIn
from engine.config import Settings
from engine.domain.commands import CAR, EVENT, HoldCar, HoldTickets
from engine.domain.results import HoldGranted


def ttl_ms(settings: Settings, ttl_seconds: int | None) -> int:
    """The hold's time-to-live: the request's, or the default REZERV_HOLD_TTL_S."""
    if ttl_seconds is not None:
        return ttl_seconds * 1000
    return int(settings.hold_ttl_s * 1000)


def ticket_hold(
    settings: Settings, principal: Principal, event_id: str, body: HoldTicketsIn, key: str | None
) -> HoldTickets:
    """The command of `POST /events/{event_id}/holds`. Raises ApiProblem (400: no usable key, 403:
    holding for someone else without being an admin). Tiers are sorted so the same body always
    makes the same command, and so a retry is recognized as one."""
    key = require_idempotency_key(key)
    customer = acting_customer(principal, body.customer_id)
    return HoldTickets(
        event_id,
        hold_id_for(customer, EVENT, event_id, key),
        customer,
        tuple(sorted(body.quantities.items())),
        ttl_ms(settings, body.ttl_seconds),
    )


def car_hold(settings: Settings, principal: Principal, car_id: str, body: HoldCarIn, key: str | None) -> HoldCar:
    """The command of `POST /cars/{car_id}/holds`; raises ApiProblem as `ticket_hold` does, and 422
    for a rental that starts before today or ends beyond the booking horizon (api/dates.py)."""
    key = require_idempotency_key(key)
    customer = acting_customer(principal, body.customer_id)
    check_rental(settings, body.start, body.end, datetime.now(UTC).date())
    return HoldCar(
        car_id,
        hold_id_for(customer, CAR, car_id, key),
        customer,
        body.start,
        body.end,
        ttl_ms(settings, body.ttl_seconds),
    )


def granted_body(granted: HoldGranted, id_field: str) -> dict[str, Any]:
    """The 201 body of a hold (and of every retry of it, with the booking's status now); `id_field`
    is "event_id" or "car_id"."""
    return {
        "hold_id": granted.hold_id,
        id_field: granted.entity_id,
        "customer_id": granted.customer_id,
        "amount": granted.amount,
        "expires_at": iso_utc(granted.expires_at),
        "expires_at_ms": granted.expires_at,
        "quantity": granted.quantity,
        "status": granted.status,
    }
