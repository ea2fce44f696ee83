"""What can be asked of the catalog, and what a page of answers is: the port between the HTTP
routes (api/routes_catalog.py) and the PostgreSQL queries (engine/adapters/pg_catalog_search.py).

Pages are keyset-paginated: a page ends at the sort key of its last row, and the next page
starts strictly after it. Unlike an offset, that position stays right when rows are added or
change while someone pages (a flash sale changing availability, a new event), and it costs an
index seek, not a scan of the skipped rows. The position is handed to clients inside a signed
cursor (api/cursors.py); `fingerprint` ties a cursor to the query it was made for.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import orjson

from engine.projections.catalog import CarEntry, EventEntry, Interval

MAX_PAGE = 100
DEFAULT_PAGE = 20

EVENT_SORTS = ("starts_at", "-starts_at", "price", "-price", "relevance")
CAR_SORTS = ("price", "-price")

# What a listing shows. Public listings hide closed events and cars in maintenance today.
OPEN, CLOSED, ANY = "open", "closed", "any"
SALES = (OPEN, CLOSED, ANY)
BLOCKED_NOW_HIDDEN, BLOCKED, NOT_BLOCKED = "hidden", "yes", "no"
BLOCK_FILTERS = (BLOCKED_NOW_HIDDEN, BLOCKED, NOT_BLOCKED, ANY)

Position = tuple[Any, ...]


class InvalidPosition(ValueError):
    """A page position that does not fit the query's sort (a cursor from another version)."""


@dataclass(frozen=True)
class EventQuery:
    text: str | None = None  # full-text search over title and venue
    venue: str | None = None  # exact, case-insensitive
    starts_from: datetime | None = None  # inclusive
    starts_to: datetime | None = None  # exclusive
    price_min: int | None = None  # an event matches if its price range overlaps [min, max]
    price_max: int | None = None
    tickets_left: bool | None = None  # True: some left; False: sold out
    sales: str = OPEN
    sort: str = "starts_at"

    def fingerprint(self) -> str:
        return _fingerprint("events", self)


@dataclass(frozen=True)
class CarQuery:
    location: str | None = None  # exact, case-insensitive
    brand: str | None = None  # exact, case-insensitive
    price_min: int | None = None  # on the daily rate
    price_max: int | None = None
    available_from: date | None = None  # with available_to: free for all of [from, to)
    available_to: date | None = None
    blocked: str = BLOCKED_NOW_HIDDEN  # hidden: not in maintenance today (public listings)
    today: date | None = field(default=None, compare=False)  # "today" for `blocked`; not part of the query's identity
    sort: str = "price"

    @property
    def window_days(self) -> int | None:
        if self.available_from is None or self.available_to is None:
            return None
        return (self.available_to - self.available_from).days

    def fingerprint(self) -> str:
        return _fingerprint("cars", self, exclude=("today",))


def _fingerprint(what: str, query: object, exclude: tuple[str, ...] = ()) -> str:
    fields = {k: v for k, v in asdict(query).items() if k not in exclude}  # type: ignore[call-overload]
    canonical = orjson.dumps([what, fields], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


@dataclass(frozen=True)
class EventPage:
    items: list[EventEntry]
    next_after: Position | None  # None: this is the last page
    projected_through_ms: int | None  # the time of the newest event the catalog has applied


@dataclass(frozen=True)
class CarItem:
    car: CarEntry
    maintenance: list[Interval]  # current and coming blocks (admin listings only)


@dataclass(frozen=True)
class CarPage:
    items: list[CarItem]
    next_after: Position | None
    projected_through_ms: int | None
