"""HTTP routes over the bookings read model: one booking's story, and a customer's bookings.

Why a read model and not the entity: a booking's lifecycle lives in its event's or car's stream
and its payment in another stream, and neither entity answers "which bookings does this
customer have". The projection (engine/adapters/pg_bookings.py) joins them into one row per
hold. It follows the log a moment behind, so a booking held a few milliseconds ago may still be
404 here, and a status may lag its command's answer by as much.

The routes read through a repository on `app.state.bookings` (`create_app(bookings=...)`): the
unit tests pass an in-memory one, production uses `PostgresBookings` over the API's pool.
Handlers return Response objects, as in api/routes_inventory.py; the models in api/schemas.py
document the shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from api.auth import CurrentPrincipal, Principal
from api.batching import Coalescer
from api.cursors import CursorCodec, InvalidCursor
from api.dependencies import Postgres, pool_of
from api.errors import ApiProblem
from api.parameters import known_parameters
from api.responses import OrjsonResponse, iso_utc
from api.schemas import ID_PATTERN, BookingOut, CustomerBookingsOut, problem_responses
from engine.ports import BookingsRepository
from engine.projections.bookings import TIME_FIELD, Booking

MAX_PAGE = 200

router = APIRouter()

PathId = Annotated[str, Path(pattern=ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="how many bookings, most recently held first")]


class BookingStatus(StrEnum):
    HELD = "HELD"
    CONFIRMED = "CONFIRMED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


class PostgresBookings:
    """The read model in PostgreSQL, over the API's pool (connected on first use).

    Single-booking reads asked for at the same time leave as one query (api/batching.py): under
    load every hold is followed by a read of its booking. No PostgreSQL configured or reachable
    is a StoreUnavailable, answered as a 503 problem."""

    def __init__(self, postgres: Postgres | None) -> None:
        self.postgres = postgres
        self.lookups: Coalescer[str, Booking] = Coalescer(self._get_many)

    async def _pool(self) -> Any:
        return await pool_of(self.postgres)

    async def get(self, hold_id: str) -> Booking | None:
        return await self.lookups.get(hold_id)

    async def _get_many(self, hold_ids: Sequence[str]) -> dict[str, Booking]:
        from engine.adapters.pg_bookings import get_bookings  # asyncpg only when PostgreSQL is used

        return await get_bookings(await self._pool(), hold_ids)

    async def of_customer(
        self, customer_id: str, limit: int, statuses: Sequence[str] = (), before: tuple[int, str] | None = None
    ) -> list[Booking]:
        from engine.adapters.pg_bookings import customer_bookings

        return await customer_bookings(await self._pool(), customer_id, limit, statuses, before)


async def get_bookings(request: Request) -> BookingsRepository:
    repository: BookingsRepository = request.app.state.bookings
    return repository


Bookings = Annotated[BookingsRepository, Depends(get_bookings)]


# ---- answers -------------------------------------------------------------------------------
def _iso_utc(ms: int | None) -> str | None:
    return None if ms is None else iso_utc(ms)


def transitions(booking: Booking) -> list[dict[str, Any]]:
    """Every status the booking reached with its time, oldest first (lifecycle order on a tie)."""
    reached = [(status, getattr(booking, name)) for status, name in TIME_FIELD.items()]
    ordered = sorted(((at, status) for status, at in reached if at is not None), key=lambda pair: pair[0])
    return [{"status": status, "at": _iso_utc(at)} for at, status in ordered]


def booking_body(booking: Booking) -> dict[str, Any]:
    b = booking
    return {
        "hold_id": b.hold_id,
        "kind": b.kind,
        "entity_id": b.entity_id,
        "customer_id": b.customer_id,
        "status": b.status,
        "reason": b.reason,
        "amount": b.amount,
        "quantity": b.quantity,
        "expires_at": _iso_utc(b.expires_at),
        "transitions": transitions(b),
        "payment": {
            "status": b.payment_status,
            "reason": b.payment_reason,
            "decided_at": _iso_utc(b.payment_decided_at),
            "refunded_at": _iso_utc(b.refunded_at),
        },
    }


def visible(booking: Booking | None, principal: Principal, hold_id: str) -> Booking:
    """The booking if `principal` may see it; another customer's booking is missing, like one that
    does not exist (ApiProblem 404). The detail says that a booking held a moment ago may not be
    readable yet: the read model trails the log by up to REZERV_PROJECTION_INTERVAL_S (1 s), and a
    client that reads right after its 201 should retry rather than conclude the hold is gone."""
    if booking is None or not principal.may_act_for(booking.customer_id):
        raise ApiProblem(404, "booking-not-found", "Booking not found", f"there is no booking {hold_id}{NOT_YET}")
    return booking


NOT_YET = " (a hold answered about a second ago or less may not be readable yet: try again shortly)"


# ---- routes --------------------------------------------------------------------------------
@router.get(
    "/bookings/{hold_id}",
    tags=["bookings"],
    summary="A booking's status, history and payment (admin or its customer)",
    responses={200: {"model": BookingOut, "description": "the booking"}, **problem_responses(401, 404, 422, 503)},
)
async def read_booking(hold_id: PathId, principal: CurrentPrincipal, bookings: Bookings) -> Response:
    """404 when the read model has no such hold (or not yet: it trails the log by a moment), and
    the same 404 for another customer's booking: hold ids are chosen by clients and may be
    guessed, so a different answer would tell a stranger which bookings exist."""
    return OrjsonResponse(booking_body(visible(await bookings.get(hold_id), principal, hold_id)))


@router.get(
    "/customers/{customer_id}/bookings",
    tags=["bookings"],
    summary="A customer's bookings, most recently held first (admin or the customer)",
    responses={
        200: {"model": CustomerBookingsOut, "description": "the bookings"},
        **problem_responses(400, 401, 403, 422, 503),
    },
    dependencies=[Depends(known_parameters("limit", "status", "cursor"))],
)
async def list_customer_bookings(
    customer_id: PathId,
    principal: CurrentPrincipal,
    bookings: Bookings,
    request: Request,
    limit: Limit = 50,
    status: Annotated[
        list[BookingStatus] | None, Query(description="only these statuses (repeat the parameter for several)")
    ] = None,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=512, description="`next_cursor` of the last page")
    ] = None,
) -> Response:
    """Keyset pages: `next_cursor` (null on the last page) goes back as `cursor`; a cursor is signed
    and tied to its customer and status filter (altered or reused elsewhere: 400)."""
    if not principal.may_act_for(customer_id):
        raise ApiProblem(403, "not-your-bookings", "Forbidden", f"only {customer_id} or an admin may list these")
    statuses = sorted({s.value for s in status or ()})
    fingerprint = f"bookings|{customer_id}|{','.join(statuses)}"
    cursors: CursorCodec = request.app.state.cursors
    before: tuple[int, str] | None = None
    if cursor is not None:
        try:
            held_at, hold_id = cursors.decode(cursor, fingerprint)
        except (InvalidCursor, ValueError):
            raise ApiProblem(
                400, "invalid-cursor", "Invalid cursor", "the cursor is not one this listing issued"
            ) from None
        before = (int(held_at), str(hold_id))
    found = await bookings.of_customer(customer_id, limit + 1, statuses, before)
    page = found[:limit]
    next_cursor = cursors.encode(fingerprint, (page[-1].held_at, page[-1].hold_id)) if len(found) > limit else None
    body = {"customer_id": customer_id, "bookings": [booking_body(b) for b in page], "next_cursor": next_cursor}
    return OrjsonResponse(body)
