"""HTTP routes of the catalog: search events, find cars free for a window, admin listings.

Public listings need no token: anyone may browse. They answer from the catalog read model
(engine/projections/catalog.py) through a cache (api/catalog_cache.py), so an answer may be a
moment behind the entities, and says by how much; a hold is still decided by the entity. Admin
listings show what the public ones hide (closed events, cars in maintenance), uncached.

Every listing pages with a signed cursor (api/cursors.py): `limit` rows (at most 100), and
`next_cursor` to pass as `cursor` for the next page, null on the last page. A query parameter
the route does not know (`offset`, a misspelt filter) is a 422, never silently ignored.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from enum import StrEnum
from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from api.auth import AdminPrincipal
from api.catalog_cache import CatalogPages, iso_utc, page_key
from api.cursors import CursorCodec, InvalidCursor
from api.dependencies import Postgres, pool_of
from api.errors import ApiProblem
from api.parameters import known_parameters
from api.schemas import MAX_PRICE, MAX_RENTAL_DAYS, CarPageOut, EventPageOut, problem_responses
from engine.adapters.pg_catalog import tier_json
from engine.domain.cars import rental_price
from engine.ports import CatalogReader
from engine.projections.catalog import EventEntry
from engine.projections.catalog_queries import (
    ANY,
    BLOCKED,
    BLOCKED_NOW_HIDDEN,
    CLOSED,
    DEFAULT_PAGE,
    MAX_PAGE,
    NOT_BLOCKED,
    OPEN,
    CarItem,
    CarPage,
    CarQuery,
    EventPage,
    EventQuery,
    InvalidPosition,
    Position,
)

router = APIRouter(tags=["catalog"])

EVENTS_LISTING = "events"
CARS_LISTING = "cars"


# ---- where the catalog and its cache come from ---------------------------------------------
class LazyPostgresCatalog:
    """The catalog in PostgreSQL over the API's pool, connected on first use."""

    def __init__(self, postgres: Postgres | None) -> None:
        self.postgres = postgres

    async def search_events(self, query: EventQuery, limit: int, after: Position | None) -> EventPage:
        from engine.adapters.pg_catalog_search import search_events  # asyncpg only when PostgreSQL is used

        return await search_events(await pool_of(self.postgres), query, limit, after)

    async def search_cars(self, query: CarQuery, limit: int, after: Position | None) -> CarPage:
        from engine.adapters.pg_catalog_search import search_cars

        return await search_cars(await pool_of(self.postgres), query, limit, after)


# The dependencies are `async` so FastAPI calls them inline instead of in its thread pool.
async def _catalog(request: Request) -> CatalogReader:
    catalog: CatalogReader = request.app.state.catalog
    return catalog


async def _pages(request: Request) -> CatalogPages:
    pages: CatalogPages = request.app.state.catalog_pages
    return pages


async def _cursors(request: Request) -> CursorCodec:
    codec: CursorCodec = request.app.state.cursors
    return codec


Catalog = Annotated[CatalogReader, Depends(_catalog)]
Pages = Annotated[CatalogPages, Depends(_pages)]
Cursors = Annotated[CursorCodec, Depends(_cursors)]


# ---- shared parameters ---------------------------------------------------------------------
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"rows per page, at most {MAX_PAGE}")]
Cursor = Annotated[str | None, Query(min_length=1, max_length=512, description="`next_cursor` of the previous page")]
Text = Annotated[str | None, Query(min_length=1, max_length=128)]
PriceBound = Annotated[int | None, Query(ge=0, le=MAX_PRICE, description="minor units")]


class EventSort(StrEnum):
    starts_at = "starts_at"
    starts_at_desc = "-starts_at"
    price = "price"
    price_desc = "-price"
    relevance = "relevance"


class CarSort(StrEnum):
    price = "price"
    price_desc = "-price"


class Sales(StrEnum):
    open = OPEN
    closed = CLOSED
    any = ANY


class Blocked(StrEnum):
    yes = BLOCKED
    no = NOT_BLOCKED
    any = ANY


EVENT_PARAMETERS = (
    "q",
    "venue",
    "starts_from",
    "starts_to",
    "price_min",
    "price_max",
    "tickets_left",
    "sort",
    "limit",
    "cursor",
)
CAR_PARAMETERS = (
    "location",
    "brand",
    "price_min",
    "price_max",
    "available_from",
    "available_to",
    "sort",
    "limit",
    "cursor",
)


def _invalid(detail: str) -> ApiProblem:
    return ApiProblem(422, "invalid-request", "Invalid request", detail)


def _instant(value: datetime | date | None) -> datetime | None:
    """A bound of a date range: a date is its midnight UTC, a naive time is UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _check_prices(price_min: int | None, price_max: int | None) -> None:
    if price_min is not None and price_max is not None and price_min > price_max:
        raise _invalid("price_min is above price_max")


def event_query(
    q: str | None,
    venue: str | None,
    starts_from: datetime | date | None,
    starts_to: datetime | date | None,
    price_min: int | None,
    price_max: int | None,
    tickets_left: bool | None,
    sort: EventSort | None,
    sales: str,
) -> EventQuery:
    start, end = _instant(starts_from), _instant(starts_to)
    if start is not None and end is not None and start >= end:
        raise _invalid("starts_from must be before starts_to")
    _check_prices(price_min, price_max)
    if sort is EventSort.relevance and not q:
        raise _invalid("sort=relevance needs a search text (q)")
    chosen = sort.value if sort is not None else ("relevance" if q else "starts_at")
    return EventQuery(q, venue, start, end, price_min, price_max, tickets_left, sales, chosen)


def car_query(
    location: str | None,
    brand: str | None,
    price_min: int | None,
    price_max: int | None,
    available_from: date | None,
    available_to: date | None,
    sort: CarSort,
    blocked: str,
) -> CarQuery:
    _check_prices(price_min, price_max)
    if (available_from is None) != (available_to is None):
        raise _invalid("give both available_from and available_to, or neither")
    if available_from is not None and available_to is not None:
        days = (available_to - available_from).days
        if days <= 0:
            raise _invalid("available_to (the day of return) must be after available_from")
        if days > MAX_RENTAL_DAYS:
            raise _invalid(f"a window is at most {MAX_RENTAL_DAYS} days")
    today = datetime.now(UTC).date()
    return CarQuery(location, brand, price_min, price_max, available_from, available_to, blocked, today, sort.value)


# ---- page bodies ---------------------------------------------------------------------------
def event_item(e: EventEntry) -> dict[str, Any]:
    return {
        "event_id": e.event_id,
        "title": e.title,
        "venue": e.venue,
        "starts_at": e.starts_at,
        "sales_open": e.sales_open,
        "price_from": e.min_price,
        "price_to": e.max_price,
        "available": e.available,
        "max_tickets_per_booking": e.max_tickets_per_booking,
        "tiers": [{**tier_json(t), "available": t.available} for t in e.tiers],
        "updated_at": iso_utc(e.changed_at),
        "href": f"/events/{e.event_id}",
    }


def car_item(item: CarItem, query: CarQuery, with_maintenance: bool) -> dict[str, Any]:
    c = item.car
    body: dict[str, Any] = {
        "car_id": c.car_id,
        "brand": c.brand,
        "model": c.model,
        "location": c.location,
        "daily_rate": c.daily_rate,
        "min_days": c.min_days,
        "discount_from_days": c.discount_from_days,
        "discount_per_day": c.discount_per_day,
        "updated_at": iso_utc(c.changed_at),
        "href": f"/cars/{c.car_id}",
    }
    days = query.window_days
    if days is not None and query.available_from is not None and query.available_to is not None:
        price = rental_price(days, c.daily_rate, c.discount_from_days, c.discount_per_day)
        body["window"] = {
            "start": query.available_from.isoformat(),
            "end": query.available_to.isoformat(),
            "days": days,
            "price": price,
        }
    if with_maintenance:
        body["maintenance"] = [
            {"block_id": i.ref, "start": i.start.isoformat(), "end": i.end.isoformat()} for i in item.maintenance
        ]
    return body


def page_body(items: list[dict[str, Any]], next_cursor: str | None, limit: int, through_ms: int | None) -> bytes:
    return orjson.dumps(
        {
            "items": items,
            "next_cursor": next_cursor,
            "limit": limit,
            "projected_through": iso_utc(through_ms) if through_ms is not None else None,
        }
    )


def _after(cursors: CursorCodec, cursor: str | None, fingerprint: str) -> Position | None:
    if cursor is None:
        return None
    try:
        return cursors.decode(cursor, fingerprint)
    except InvalidCursor as exc:
        raise ApiProblem(400, "invalid-cursor", "Invalid cursor", str(exc)) from None


async def _event_page(
    catalog: CatalogReader, cursors: CursorCodec, query: EventQuery, limit: int, cursor: str | None
) -> bytes:
    fingerprint = query.fingerprint()
    after = _after(cursors, cursor, fingerprint)
    try:
        page = await catalog.search_events(query, limit, after)
    except InvalidPosition as exc:
        raise ApiProblem(400, "invalid-cursor", "Invalid cursor", str(exc)) from None
    next_cursor = cursors.encode(fingerprint, page.next_after) if page.next_after is not None else None
    return page_body([event_item(e) for e in page.items], next_cursor, limit, page.projected_through_ms)


async def _car_page(
    catalog: CatalogReader, cursors: CursorCodec, query: CarQuery, limit: int, cursor: str | None, admin: bool
) -> bytes:
    fingerprint = query.fingerprint()
    after = _after(cursors, cursor, fingerprint)
    try:
        page = await catalog.search_cars(query, limit, after)
    except InvalidPosition as exc:
        raise ApiProblem(400, "invalid-cursor", "Invalid cursor", str(exc)) from None
    next_cursor = cursors.encode(fingerprint, page.next_after) if page.next_after is not None else None
    items = [car_item(item, query, admin) for item in page.items]
    return page_body(items, next_cursor, limit, page.projected_through_ms)


_EVENT_PAGE: dict[int | str, dict[str, Any]] = {200: {"model": EventPageOut, "description": "a page of events"}}
_CAR_PAGE: dict[int | str, dict[str, Any]] = {200: {"model": CarPageOut, "description": "a page of cars"}}
_LISTING_DOC = (
    "Keyset pages: pass `next_cursor` as `cursor` for the next page (null on the last). A cursor "
    "is signed and tied to its filters and sort: altered, or used with other filters, it is a 400."
)


# ---- events --------------------------------------------------------------------------------
@router.get(
    "/events",
    summary="Search events with tickets on sale (no token needed)",
    description=(
        'Full-text search over title and venue (`q`, web-search syntax: words, "quoted phrases", '
        "-excluded), filters, sorting (default: by relevance with `q`, else by start). Only events "
        "whose sales are open are listed. " + _LISTING_DOC
    ),
    responses={**_EVENT_PAGE, **problem_responses(400, 422, 503)},
    dependencies=[Depends(known_parameters(*EVENT_PARAMETERS))],
)
async def search_events(
    request: Request,
    catalog: Catalog,
    pages: Pages,
    cursors: Cursors,
    q: Annotated[str | None, Query(min_length=1, max_length=200, description="search text")] = None,
    venue: Annotated[str | None, Query(min_length=1, max_length=128, description="exact venue, any case")] = None,
    starts_from: Annotated[
        datetime | date | None, Query(description="starts at or after (ISO 8601; a date is midnight UTC)")
    ] = None,
    starts_to: Annotated[datetime | date | None, Query(description="starts before (ISO 8601)")] = None,
    price_min: Annotated[PriceBound, Query(description="has a ticket at this price or above")] = None,
    price_max: Annotated[PriceBound, Query(description="has a ticket at this price or below")] = None,
    tickets_left: Annotated[bool | None, Query(description="true: tickets left; false: sold out")] = None,
    sort: EventSort | None = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    query = event_query(q, venue, starts_from, starts_to, price_min, price_max, tickets_left, sort, OPEN)
    key = page_key(EVENTS_LISTING, request.scope["query_string"])
    load = partial(_event_page, catalog, cursors, query, limit, cursor)
    return await pages.read(EVENTS_LISTING, key, load, request.scope.get("state"))


@router.get(
    "/admin/events",
    summary="List events, closed ones included (admin)",
    description="The filters and pages of `GET /events`, plus `sales`; never cached. " + _LISTING_DOC,
    responses={**_EVENT_PAGE, **problem_responses(400, 401, 403, 422, 503)},
    dependencies=[Depends(known_parameters(*EVENT_PARAMETERS, "sales"))],
)
async def admin_events(
    _admin: AdminPrincipal,
    catalog: Catalog,
    cursors: Cursors,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    venue: Text = None,
    starts_from: datetime | date | None = None,
    starts_to: datetime | date | None = None,
    price_min: PriceBound = None,
    price_max: PriceBound = None,
    tickets_left: bool | None = None,
    sales: Annotated[Sales, Query(description="open, closed or any")] = Sales.any,
    sort: EventSort | None = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    query = event_query(q, venue, starts_from, starts_to, price_min, price_max, tickets_left, sort, sales.value)
    return await CatalogPages(None, 0).read(
        EVENTS_LISTING, "", lambda: _event_page(catalog, cursors, query, limit, cursor)
    )


# ---- cars ----------------------------------------------------------------------------------
@router.get(
    "/cars",
    summary="Find rental cars, free for a whole window if asked (no token needed)",
    description=(
        "With `available_from` and `available_to` (the day of return, exclusive, as in a hold), only "
        "cars free for every day of that window and rentable for that long, each with its price for "
        "the window. Without a window, cars in maintenance today are not listed. Sorted by daily "
        "rate. " + _LISTING_DOC
    ),
    responses={**_CAR_PAGE, **problem_responses(400, 422, 503)},
    dependencies=[Depends(known_parameters(*CAR_PARAMETERS))],
)
async def search_cars(
    request: Request,
    catalog: Catalog,
    pages: Pages,
    cursors: Cursors,
    location: Annotated[str | None, Query(min_length=1, max_length=128, description="exact, any case")] = None,
    brand: Annotated[str | None, Query(min_length=1, max_length=128, description="exact, any case")] = None,
    price_min: Annotated[PriceBound, Query(description="daily rate at least")] = None,
    price_max: Annotated[PriceBound, Query(description="daily rate at most")] = None,
    available_from: Annotated[date | None, Query(description="first day of the rental (YYYY-MM-DD)")] = None,
    available_to: Annotated[date | None, Query(description="day of return, exclusive (YYYY-MM-DD)")] = None,
    sort: CarSort = CarSort.price,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    query = car_query(location, brand, price_min, price_max, available_from, available_to, sort, BLOCKED_NOW_HIDDEN)
    # "Today" decides which cars are in maintenance now: part of the cached page's identity.
    key = page_key(CARS_LISTING, request.scope["query_string"], query.today)
    load = partial(_car_page, catalog, cursors, query, limit, cursor, False)
    return await pages.read(CARS_LISTING, key, load, request.scope.get("state"))


@router.get(
    "/admin/cars",
    summary="List cars, those in maintenance included, with their blocks (admin)",
    description=(
        "The filters and pages of `GET /cars`, plus `blocked` (yes: has a current or coming "
        "maintenance block); never cached. " + _LISTING_DOC
    ),
    responses={**_CAR_PAGE, **problem_responses(400, 401, 403, 422, 503)},
    dependencies=[Depends(known_parameters(*CAR_PARAMETERS, "blocked"))],
)
async def admin_cars(
    _admin: AdminPrincipal,
    catalog: Catalog,
    cursors: Cursors,
    location: Text = None,
    brand: Text = None,
    price_min: PriceBound = None,
    price_max: PriceBound = None,
    available_from: date | None = None,
    available_to: date | None = None,
    blocked: Annotated[Blocked, Query(description="yes, no or any")] = Blocked.any,
    sort: CarSort = CarSort.price,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    query = car_query(location, brand, price_min, price_max, available_from, available_to, sort, blocked.value)
    return await CatalogPages(None, 0).read(
        CARS_LISTING, "", lambda: _car_page(catalog, cursors, query, limit, cursor, True)
    )
