"""The sales read model over HTTP and in the API's /metrics.

`GET /sales` (the best-selling entities and the totals) and `GET /sales/{kind}/{id}` answer from
the sales read model (engine/sales.py), which the bookings projection keeps beside its rows.
They are admin routes: revenue is not for customers.

/metrics exports the same counters, read from PostgreSQL at scrape time (so they survive any
process's restart and do not depend on the projection's process being scraped): totals by outcome
and reason, bookings by status now, and per entity only for the REZERV_METRICS_TOP_ENTITIES
entities with the most revenue, so that the label set stays bounded however many events exist.
An entity that leaves the top stops being exported (its series ends; its counters go on in the
read model and in `GET /sales`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.responses import Response

from actors.process_metrics import labelled_counter
from api.auth import AdminPrincipal
from api.dependencies import Postgres
from api.errors import ApiProblem
from api.responses import OrjsonResponse
from api.schemas import ID_PATTERN, ProblemOut, SalesListOut, SalesOut, problem_responses
from engine.domain.errors import StoreUnavailable
from engine.ports import SalesReadModel
from engine.sales import EntitySales, status_counts

router = APIRouter()

_KINDS = {"events": "event", "cars": "car"}


class SalesOverApiPool:
    """The PostgreSQL sales read model over the API's pool (connected on first use); no
    PostgreSQL configured or reachable is a StoreUnavailable (503)."""

    def __init__(self, postgres: Postgres | None) -> None:
        self.postgres = postgres

    async def _model(self) -> SalesReadModel:
        if self.postgres is None:
            raise StoreUnavailable("the API has no PostgreSQL dependency")
        try:
            pool = await self.postgres.get_pool()
        except Exception as exc:
            raise StoreUnavailable(f"PostgreSQL is not reachable: {type(exc).__name__}: {exc}") from exc
        from engine.adapters.pg_sales import PostgresSales  # asyncpg only when PostgreSQL is used

        return PostgresSales(pool)

    async def top(self, limit: int) -> list[EntitySales]:
        return await (await self._model()).top(limit)

    async def of(self, entity: str) -> EntitySales | None:
        return await (await self._model()).of(entity)

    async def totals(self) -> EntitySales:
        return await (await self._model()).totals()


def sales_body(sales: EntitySales) -> dict[str, Any]:
    return {
        "entity": sales.entity,
        "kind": sales.kind if sales.entity != "*" else "*",
        "held_bookings": sales.held_bookings,
        "held_units": sales.held_units,
        "confirmed_bookings": sales.confirmed_bookings,
        "sold_units": sales.sold_units,
        "revenue": sales.revenue,
        "cancelled_bookings": sales.cancelled_bookings,
        "cancelled_units": sales.cancelled_units,
        "cancelled_amount": sales.cancelled_amount,
        "released_units": sales.released_units,
        "released": dict(sales.released),
        "net_units": sales.sold_units - sales.cancelled_units,
        "net_revenue": sales.revenue - sales.cancelled_amount,
    }


async def get_sales(request: Request) -> SalesReadModel:
    model: SalesReadModel = request.app.state.sales
    return model


Sales = Annotated[SalesReadModel, Depends(get_sales)]
_PROBLEMS = problem_responses(401, 403, 422, 503)


@router.get(
    "/sales",
    tags=["sales"],
    summary="Sales per event and car, most revenue first, and the totals (admin)",
    responses={200: {"model": SalesListOut, "description": "the totals and the best-selling entities"}, **_PROBLEMS},
)
async def list_sales(
    _admin: AdminPrincipal, sales: Sales, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> Response:
    totals, top = await asyncio.gather(sales.totals(), sales.top(limit))
    return OrjsonResponse({"totals": sales_body(totals), "entities": [sales_body(s) for s in top]})


@router.get(
    "/sales/{kind}/{entity_id}",
    tags=["sales"],
    summary="One event's or car's sales (admin)",
    responses={
        200: {"model": SalesOut, "description": "its counters"},
        404: {"model": ProblemOut, "description": "no booking of it was ever counted"},
        **_PROBLEMS,
    },
)
async def entity_sales(
    kind: Literal["events", "cars"],
    entity_id: Annotated[str, Path(pattern=ID_PATTERN)],
    _admin: AdminPrincipal,
    sales: Sales,
) -> Response:
    found = await sales.of(f"{_KINDS[kind]}/{entity_id}")
    if found is None:
        raise ApiProblem(404, "not-found", "Not found", f"no sales of {kind}/{entity_id} were counted")
    return OrjsonResponse(sales_body(found))


# ---- /metrics ------------------------------------------------------------------------------------
@dataclass
class SalesSnapshot:
    """The last read of the read model, exported at each scrape."""

    totals: EntitySales | None = None
    top: list[EntitySales] = field(default_factory=list)


class SalesCollector(Collector):  # type: ignore[misc]
    def __init__(self) -> None:
        self.snapshot = SalesSnapshot()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        if snapshot.totals is None:
            return
        yield from totals_families(snapshot.totals)
        yield from entity_families(snapshot.top)


SALES_METRICS = SalesCollector()
REGISTRY.register(SALES_METRICS)


async def refresh_sales_metrics(model: SalesReadModel, top: int, timeout_s: float = 1.0) -> None:
    """Read the totals and the top entities for the coming scrape; a failed read keeps the last."""
    with contextlib.suppress(Exception):
        totals, best = await asyncio.wait_for(asyncio.gather(model.totals(), model.top(top)), timeout_s)
        SALES_METRICS.snapshot = SalesSnapshot(totals, best)


def totals_families(t: EntitySales) -> Iterator[Metric]:
    yield labelled_counter(
        "rezerv_sales_bookings",
        "Bookings by what happened to them (sales read model, every entity)",
        ["outcome"],
        {"held": t.held_bookings, "confirmed": t.confirmed_bookings, "cancelled": t.cancelled_bookings},
    )
    yield labelled_counter(
        "rezerv_sales_released_bookings", "Bookings ended unsold, by reason (every entity)", ["reason"], t.released
    )
    yield labelled_counter(
        "rezerv_sales_units",
        "Tickets and rental days, by what happened to them (every entity)",
        ["outcome"],
        {"held": t.held_units, "sold": t.sold_units, "cancelled": t.cancelled_units, "released": t.released_units},
    )
    yield labelled_counter(
        "rezerv_sales_amount_minor_units",
        "Money of confirmed bookings (revenue) and of cancelled ones (refunded), minor units (every entity)",
        ["outcome"],
        {"confirmed": t.revenue, "cancelled": t.cancelled_amount},
    )
    now = GaugeMetricFamily("rezerv_bookings", "Bookings by status now (from the sales read model)", labels=["status"])
    for status, value in status_counts(t).items():
        now.add_metric([status], value)
    yield now


def entity_families(top: list[EntitySales]) -> Iterator[Metric]:
    help_top = "(only the entities with the most revenue: REZERV_METRICS_TOP_ENTITIES)"
    sold = CounterMetricFamily(
        "rezerv_entity_sold_units", f"Tickets (events) or rental days (cars) sold {help_top}", labels=["entity"]
    )
    revenue = CounterMetricFamily(
        "rezerv_entity_revenue_minor_units", f"Money of confirmed bookings, minor units {help_top}", labels=["entity"]
    )
    held = CounterMetricFamily("rezerv_entity_held_bookings", f"Bookings held {help_top}", labels=["entity"])
    released = CounterMetricFamily(
        "rezerv_entity_released_bookings", f"Bookings ended unsold, by reason {help_top}", labels=["entity", "reason"]
    )
    for s in top:
        sold.add_metric([s.entity], s.sold_units)
        revenue.add_metric([s.entity], s.revenue)
        held.add_metric([s.entity], s.held_bookings)
        for reason, value in s.released.items():
            released.add_metric([s.entity, reason], value)
    yield from (sold, revenue, held, released)
