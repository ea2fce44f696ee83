"""Engine errors as RFC 9457 problems: one table from error class to HTTP status and title.

The status says what the client can do about it:
- 422: the request is well-formed JSON but the engine cannot act on it (an unknown tier, an
  empty interval, a rental shorter than the minimum, a date in the past or beyond the booking
  horizon), or its Idempotency-Key was used before with another body (the IETF
  idempotency-key draft answers that with 422);
- 404: the event, car or booking does not exist;
- 409: the request conflicts with the entity's current state (sold out, dates taken, sales
  closed, the event started, too late to cancel, a transition the booking cannot make);
  retrying the same request changes nothing;
- 503 with ``Retry-After``: a transient failure (store down, entity moving between hosts);
  retrying with the same Idempotency-Key is safe and returns the original answer.

The problem's ``type`` is PROBLEM_TYPE_BASE + the error's stable code, which is also sent as the
``code`` extension member so clients can switch on it without parsing URLs.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from starlette.responses import Response

from api.problems import problem
from engine.accounts import InvalidCredentials, LoginTaken, RefreshRefused, Throttled
from engine.domain.accounts import InvalidLogin, WeakPassword
from engine.domain.errors import (
    AlreadyExists,
    BelowMinimumRental,
    BookingNotFound,
    CancellationClosed,
    DateBeyondHorizon,
    DateInThePast,
    DomainError,
    EntityNotFound,
    EventStarted,
    IdempotencyConflict,
    InsufficientFunds,
    InsufficientInventory,
    IntervalUnavailable,
    InvalidCommand,
    InvalidTransition,
    OverBookingLimit,
    RezervError,
    SalesClosed,
    TransientError,
)
from engine.topups import TopupLimit, TopupRefused

log = logging.getLogger("rezerv.api")

RETRY_AFTER_S = "1"

# Looked up along the error's MRO, so a subclass without an entry gets its family's answer.
STATUS: dict[type[RezervError], tuple[int, str]] = {
    InvalidCommand: (422, "Invalid command"),
    BelowMinimumRental: (422, "Below the minimum rental"),
    DateInThePast: (422, "Date in the past"),
    DateBeyondHorizon: (422, "Date beyond the booking horizon"),
    IdempotencyConflict: (422, "Idempotency key reused with another request"),
    EntityNotFound: (404, "Not found"),
    BookingNotFound: (404, "Booking not found"),
    AlreadyExists: (409, "Already exists"),
    InsufficientInventory: (409, "Sold out"),
    OverBookingLimit: (409, "Over the per-booking limit"),
    SalesClosed: (409, "Sales closed"),
    EventStarted: (409, "Event started"),
    CancellationClosed: (409, "Cancellation closed"),
    IntervalUnavailable: (409, "Dates unavailable"),
    InvalidTransition: (409, "Invalid transition"),
    InsufficientFunds: (409, "Insufficient funds"),
    InvalidLogin: (422, "Invalid login"),
    WeakPassword: (422, "Password too weak"),
    LoginTaken: (409, "Login taken"),
    InvalidCredentials: (401, "Unauthorized"),
    RefreshRefused: (401, "Unauthorized"),
    Throttled: (429, "Too many attempts"),
    TopupRefused: (422, "Top-up refused"),
    TopupLimit: (409, "Over the top-up limit"),
    DomainError: (409, "Request refused"),
    TransientError: (503, "Temporarily unavailable"),
}
FALLBACK = (500, "Internal error")

TRANSIENT_DETAIL = "the request could not be completed now; retry it with the same Idempotency-Key"


def status_of(error: RezervError) -> tuple[int, str]:
    for cls in type(error).__mro__:
        found = STATUS.get(cls)
        if found is not None:
            return found
    return FALLBACK


def problem_for(error: RezervError, instance: str | None = None) -> Response:
    status, title = status_of(error)
    if isinstance(error, TransientError):
        # The message may name internal hosts and ports; it goes to the log, the code to the client.
        log.warning("transient engine error %s: %s", error.code, error.message)
        return problem(
            status,
            title,
            TRANSIENT_DETAIL,
            kind=error.code,
            instance=instance,
            headers={"Retry-After": RETRY_AFTER_S},
            code=error.code,
        )
    return problem(status, title, error.message, kind=error.code, instance=instance, code=error.code)


class ApiProblem(Exception):
    """A refusal decided by the API itself (a missing header, another customer's hold)."""

    def __init__(self, status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers


async def _rezerv_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RezervError)
    return problem_for(exc, request.url.path)


def api_problem_response(exc: ApiProblem, instance: str | None = None) -> Response:
    return problem(
        exc.status, exc.title, exc.detail, kind=exc.code, instance=instance, headers=exc.headers, code=exc.code
    )


async def _api_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return api_problem_response(exc, request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RezervError, _rezerv_error)
    app.add_exception_handler(ApiProblem, _api_problem)
