"""The bookings read-model routes over an in-memory repository: shapes, order, who may read what."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from api.app import create_app
from engine.config import Settings
from engine.domain.errors import StoreUnavailable
from engine.projections.bookings import Booking
from tests.unit.api.asgi_client import AsgiClient
from tests.unit.api.conftest import bearer
from tests.unit.api.test_auth_and_validation import assert_problem

AT = 1_800_000_000_000  # 2027-01-15T08:00:00Z
AT_ISO = "2027-01-15T08:00:00.000Z"


@dataclass
class FakeBookings:
    rows: dict[str, Booking] = field(default_factory=dict)
    fail: bool = False
    asked_limits: list[int] = field(default_factory=list)

    def add(self, booking: Booking) -> Booking:
        self.rows[booking.hold_id] = booking
        return booking

    async def get(self, hold_id: str) -> Booking | None:
        if self.fail:
            raise StoreUnavailable("database down at 10.0.0.7:5432")
        return self.rows.get(hold_id)

    async def of_customer(
        self, customer_id: str, limit: int, statuses: Sequence[str] = (), before: tuple[int, str] | None = None
    ) -> list[Booking]:
        self.asked_limits.append(limit)
        mine = [
            b
            for b in self.rows.values()
            if b.customer_id == customer_id
            and (not statuses or b.status in statuses)
            and (before is None or (b.held_at, b.hold_id) < before)
        ]
        return sorted(mine, key=lambda b: (b.held_at, b.hold_id), reverse=True)[:limit]


def held(hold_id: str = "h1", customer: str = "alice", at: int = AT, **changes: object) -> Booking:
    values: dict[str, object] = {
        "hold_id": hold_id,
        "kind": "event",
        "entity_id": "e1",
        "booking_stream": "event/e1",
        "customer_id": customer,
        "amount": 11_800,
        "quantity": 2,
        "status": "HELD",
        "expires_at": at + 600_000,
        "held_at": at,
        "hold_version": 3,
    }
    values.update(changes)
    return Booking(**values)  # type: ignore[arg-type]


@dataclass
class Client:
    http: AsgiClient
    bookings: FakeBookings
    settings: Settings

    def as_(self, subject: str, *roles: str) -> dict[str, str]:
        return bearer(self.settings, subject, *roles)


@pytest.fixture
def client(settings: Settings) -> Client:
    fake = FakeBookings()
    app = create_app(settings, dependencies=[], bookings=fake)
    return Client(AsgiClient(app), fake, settings)


async def test_a_cancelled_booking_with_its_history_and_refund(client: Client) -> None:
    client.bookings.add(
        held(
            status="CANCELLED",
            reason="cancelled by customer",
            confirmed_at=AT + 1500,
            cancelled_at=AT + 60_000,
            terminal_version=5,
            payment_status="REFUNDED",
            payment_reason="booking cancelled",
            payment_decided_at=AT + 1000,
            payment_version=1,
            refunded_at=AT + 61_000,
        )
    )
    reply = await client.http.get("/bookings/h1", headers=client.as_("alice"))
    assert reply.status == 200, reply.body
    assert reply.json() == {
        "hold_id": "h1",
        "kind": "event",
        "entity_id": "e1",
        "customer_id": "alice",
        "status": "CANCELLED",
        "reason": "cancelled by customer",
        "amount": 11_800,
        "quantity": 2,
        "expires_at": "2027-01-15T08:10:00.000Z",
        "transitions": [
            {"status": "HELD", "at": AT_ISO},
            {"status": "CONFIRMED", "at": "2027-01-15T08:00:01.500Z"},
            {"status": "CANCELLED", "at": "2027-01-15T08:01:00.000Z"},
        ],
        "payment": {
            "status": "REFUNDED",
            "reason": "booking cancelled",
            "decided_at": "2027-01-15T08:00:01.000Z",
            "refunded_at": "2027-01-15T08:01:01.000Z",
        },
    }


async def test_a_fresh_hold_has_one_transition_and_no_payment(client: Client) -> None:
    client.bookings.add(held(kind="car", entity_id="c1", booking_stream="car/c1", quantity=4))
    body = (await client.http.get("/bookings/h1", headers=client.as_("alice"))).json()
    assert body["transitions"] == [{"status": "HELD", "at": AT_ISO}]
    assert body["payment"] == {"status": "NONE", "reason": None, "decided_at": None, "refunded_at": None}
    assert (body["kind"], body["entity_id"], body["quantity"], body["reason"]) == ("car", "c1", 4, None)


async def test_transitions_are_in_time_order(client: Client) -> None:
    client.bookings.add(held(status="EXPIRED", expired_at=AT + 5, terminal_version=4))
    body = (await client.http.get("/bookings/h1", headers=client.as_("alice"))).json()
    assert [t["status"] for t in body["transitions"]] == ["HELD", "EXPIRED"]
    # A tie keeps the lifecycle order.
    client.bookings.add(held("h2", status="RELEASED", released_at=AT, terminal_version=4))
    body = (await client.http.get("/bookings/h2", headers=client.as_("alice"))).json()
    assert [t["status"] for t in body["transitions"]] == ["HELD", "RELEASED"]


async def test_an_admin_reads_any_booking(client: Client) -> None:
    client.bookings.add(held())
    reply = await client.http.get("/bookings/h1", headers=client.as_("root", "admin"))
    assert reply.status == 200
    assert reply.json()["customer_id"] == "alice"


async def test_another_customers_booking_looks_like_no_booking(client: Client) -> None:
    client.bookings.add(held())
    theirs = await client.http.get("/bookings/h1", headers=client.as_("bob"))
    missing = await client.http.get("/bookings/h2", headers=client.as_("bob"))
    assert_problem(theirs, 404, "booking-not-found")
    assert theirs.json()["detail"] == missing.json()["detail"].replace("h2", "h1"), "nothing tells them apart"


async def test_an_unknown_booking_is_404_which_says_a_new_booking_may_not_be_readable_yet(client: Client) -> None:
    reply = await client.http.get("/bookings/nope", headers=client.as_("alice"))
    body = assert_problem(reply, 404, "booking-not-found")
    assert body["detail"].startswith("there is no booking nope")
    assert "may not be readable yet" in body["detail"]


async def test_no_token_is_401(client: Client) -> None:
    client.bookings.add(held())
    assert_problem(await client.http.get("/bookings/h1"), 401)
    assert_problem(await client.http.get("/customers/alice/bookings"), 401)


async def test_a_malformed_hold_id_is_422(client: Client) -> None:
    assert_problem(await client.http.get("/bookings/a%20b", headers=client.as_("alice")), 422, "invalid-request")


async def test_an_unreachable_read_model_is_503_without_internals(client: Client) -> None:
    client.bookings.fail = True
    reply = await client.http.get("/bookings/h1", headers=client.as_("alice"))
    body = assert_problem(reply, 503, "store-unavailable")
    assert "10.0.0.7" not in reply.body.decode()
    assert reply.headers["retry-after"] == "1"
    assert body["code"] == "store-unavailable"


async def test_a_customer_lists_its_bookings_newest_first(client: Client) -> None:
    for i in range(3):
        client.bookings.add(held(f"h{i}", at=AT + i * 1000))
    client.bookings.add(held("theirs", customer="bob"))
    reply = await client.http.get("/customers/alice/bookings", headers=client.as_("alice"))
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["customer_id"] == "alice"
    assert [b["hold_id"] for b in body["bookings"]] == ["h2", "h1", "h0"]
    assert client.bookings.asked_limits == [51], "one more than the page, to know if another page follows"
    assert body["next_cursor"] is None
    limited = await client.http.get("/customers/alice/bookings?limit=2", headers=client.as_("root", "admin"))
    assert [b["hold_id"] for b in limited.json()["bookings"]] == ["h2", "h1"]


async def test_a_customer_with_no_bookings_gets_an_empty_list(client: Client) -> None:
    reply = await client.http.get("/customers/carol/bookings", headers=client.as_("carol"))
    assert reply.json() == {"customer_id": "carol", "bookings": [], "next_cursor": None}


async def test_only_the_customer_or_an_admin_lists(client: Client) -> None:
    reply = await client.http.get("/customers/alice/bookings", headers=client.as_("bob"))
    assert_problem(reply, 403, "not-your-bookings")


@pytest.mark.parametrize("limit", ["0", "201", "ten", "-1"])
async def test_the_page_size_is_bounded(client: Client, limit: str) -> None:
    reply = await client.http.get(f"/customers/alice/bookings?limit={limit}", headers=client.as_("alice"))
    assert_problem(reply, 422, "invalid-request")


async def test_without_postgres_the_default_read_model_answers_503(settings: Settings) -> None:
    http = AsgiClient(create_app(settings, dependencies=[]))
    reply = await http.get("/bookings/h1", headers=bearer(settings, "alice"))
    assert_problem(reply, 503, "store-unavailable")


async def test_openapi_documents_the_booking_routes(client: Client) -> None:
    spec = (await client.http.get("/openapi.json")).json()
    assert {"/bookings/{hold_id}", "/customers/{customer_id}/bookings"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert {"BookingOut", "BookingPaymentOut", "BookingTransitionOut", "CustomerBookingsOut"} <= set(schemas)
    assert {"401", "404", "503"} <= set(spec["paths"]["/bookings/{hold_id}"]["get"]["responses"])


# ---- pages -----------------------------------------------------------------------------------
async def pages(client: Client, path: str, who: dict[str, str]) -> list[list[str]]:
    out: list[list[str]] = []
    url = path
    while True:
        reply = await client.http.get(url, headers=who)
        assert reply.status == 200, reply.body
        body = reply.json()
        out.append([b["hold_id"] for b in body["bookings"]])
        if body["next_cursor"] is None:
            return out
        url = f"{path}&cursor={body['next_cursor']}"


async def test_a_customer_pages_through_its_bookings_with_a_cursor(client: Client) -> None:
    for i in range(7):
        client.bookings.add(held(f"h{i}", at=AT + (i // 2) * 1000))  # pairs share a time: ties by id
    client.bookings.add(held("theirs", customer="bob"))
    got = await pages(client, "/customers/alice/bookings?limit=3", client.as_("alice"))
    assert got == [["h6", "h5", "h4"], ["h3", "h2", "h1"], ["h0"]]


async def test_a_full_last_page_says_there_is_no_next_one(client: Client) -> None:
    for i in range(4):
        client.bookings.add(held(f"h{i}", at=AT + i))
    assert await pages(client, "/customers/alice/bookings?limit=2", client.as_("alice")) == [["h3", "h2"], ["h1", "h0"]]


async def test_bookings_are_filtered_by_status(client: Client) -> None:
    client.bookings.add(held("h-held", at=AT + 3))
    client.bookings.add(held("h-confirmed", at=AT + 2, status="CONFIRMED", confirmed_at=AT + 5))
    client.bookings.add(held("h-released", at=AT + 1, status="RELEASED", released_at=AT + 5))
    one = await pages(client, "/customers/alice/bookings?limit=5&status=CONFIRMED", client.as_("alice"))
    assert one == [["h-confirmed"]]
    two = await pages(client, "/customers/alice/bookings?limit=1&status=HELD&status=RELEASED", client.as_("alice"))
    assert two == [["h-held"], ["h-released"]]
    reply = await client.http.get("/customers/alice/bookings?status=LOST", headers=client.as_("alice"))
    assert_problem(reply, 422, "invalid-request")


async def test_a_tampered_or_foreign_cursor_is_a_400(client: Client) -> None:
    for i in range(3):
        client.bookings.add(held(f"h{i}", at=AT + i))
        client.bookings.add(held(f"b{i}", customer="bob", at=AT + i))
    first = (await client.http.get("/customers/alice/bookings?limit=1", headers=client.as_("alice"))).json()
    cursor = first["next_cursor"]
    body, mac = cursor.split(".")
    tampered = ("A" if body[0] != "A" else "B") + body[1:] + "." + mac
    reply = await client.http.get(f"/customers/alice/bookings?limit=1&cursor={tampered}", headers=client.as_("alice"))
    assert_problem(reply, 400, "invalid-cursor")
    other_filter = f"/customers/alice/bookings?limit=1&status=HELD&cursor={cursor}"
    assert_problem(await client.http.get(other_filter, headers=client.as_("alice")), 400, "invalid-cursor")
    other_customer = f"/customers/bob/bookings?limit=1&cursor={cursor}"
    assert_problem(await client.http.get(other_customer, headers=client.as_("bob")), 400, "invalid-cursor")


async def test_an_offset_is_refused_not_ignored(client: Client) -> None:
    reply = await client.http.get("/customers/alice/bookings?offset=50", headers=client.as_("alice"))
    body = assert_problem(reply, 422, "unknown-parameter")
    assert "offset" in body["detail"]
