"""Engine errors as problems: the status table, and transient failures as 503 with Retry-After."""

from __future__ import annotations

import pytest

from api.app import create_app
from api.errors import STATUS, status_of
from engine import accounts, topups
from engine.adapters.http_provider import ProviderUnavailable
from engine.config import Settings
from engine.domain import accounts as domain_accounts
from engine.domain import errors as e
from tests.unit.api.asgi_client import AsgiClient
from tests.unit.api.conftest import Api, bearer
from tests.unit.api.test_auth_and_validation import assert_problem

EXPECTED: dict[type[e.RezervError], int] = {
    e.InvalidCommand: 422,
    e.BelowMinimumRental: 422,
    e.DateInThePast: 422,
    e.DateBeyondHorizon: 422,
    e.IdempotencyConflict: 422,
    e.EntityNotFound: 404,
    e.BookingNotFound: 404,
    e.AlreadyExists: 409,
    e.InsufficientInventory: 409,
    e.OverBookingLimit: 409,
    e.SalesClosed: 409,
    e.EventStarted: 409,
    e.CancellationClosed: 409,
    e.IntervalUnavailable: 409,
    e.InvalidTransition: 409,
    e.InsufficientFunds: 409,
    domain_accounts.InvalidLogin: 422,
    domain_accounts.WeakPassword: 422,
    accounts.LoginTaken: 409,
    accounts.InvalidCredentials: 401,
    accounts.RefreshRefused: 401,
    accounts.Throttled: 429,
    topups.TopupRefused: 422,
    topups.TopupLimit: 409,
    ProviderUnavailable: 503,
    e.TransientError: 503,
    e.OwnershipLost: 503,
    e.StoreUnavailable: 503,
    e.ConcurrencyConflict: 503,
    e.ShardUnavailable: 503,
    e.ArchiveLookupNeeded: 503,
}


def all_errors(cls: type[e.RezervError] = e.RezervError) -> list[type[e.RezervError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(all_errors(sub))
    return found


@pytest.mark.parametrize("cls", list(EXPECTED))
def test_status_of_each_error(cls: type[e.RezervError]) -> None:
    assert status_of(cls("x"))[0] == EXPECTED[cls]


def test_every_domain_error_has_its_own_entry() -> None:
    """A new DomainError must be given a status on purpose, not inherit the family's 409 unnoticed."""
    domain = [c for c in all_errors() if issubclass(c, e.DomainError) and c is not e.DomainError]
    assert [c.__name__ for c in domain if c not in STATUS] == []
    assert all(c in EXPECTED for c in all_errors() if c not in (e.DomainError,)), "extend EXPECTED"


async def test_a_failed_commit_is_503_with_retry_after_and_a_retry_succeeds(api: Api) -> None:
    await api.create_event()
    api.inventory.store.fail_next_appends = 1
    reply = await api.hold_tickets("e1", {"standard": 2}, "k1")
    problem = assert_problem(reply, 503, "store-unavailable")
    assert reply.headers["retry-after"] == "1"
    assert "injected" not in problem["detail"], "internal messages stay in the log"
    assert "Idempotency-Key" in problem["detail"]
    retry = await api.hold_tickets("e1", {"standard": 2}, "k1")
    assert retry.status == 201
    assert (await api.tier("e1", "standard"))["held"] == 2


async def test_a_dead_shard_is_503(api: Api) -> None:
    await api.create_event()

    async def gone(payload: bytes) -> bytes:
        raise ConnectionError("actor died")

    for shard in api.inventory.shards:
        shard.call.remote = gone  # type: ignore[method-assign]  # the actor process is gone
    reply = await api.hold_tickets("e1", {"standard": 1}, "k1")
    assert_problem(reply, 503, "shard-unavailable")
    assert reply.headers["retry-after"] == "1"


async def test_without_ray_the_inventory_routes_answer_503_not_500(settings: Settings) -> None:
    app = create_app(settings.replace(ray_address=""), dependencies=[])
    reply = await AsgiClient(app).get("/events/e1", headers=bearer(settings, "alice"))
    assert_problem(reply, 503, "shard-unavailable")
    assert app.state.inventory is None
