"""Prometheus metrics of the API process, and a lean ASGI middleware that records them.

A pure ASGI middleware (not BaseHTTPMiddleware) because it sits on the hot path of every
request: it costs one clock read and two metric updates, no extra task.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUESTS = Counter("rezerv_http_requests_total", "HTTP requests answered", ["route", "method", "status"])
# 0.15 s and 0.25 s are bounds the load test reports against (a hold's p99 at 256 users, an
# admitted request's past capacity): a share within them is then exact, not interpolated.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENCY = Histogram("rezerv_http_request_seconds", "HTTP request latency", ["route"], buckets=LATENCY_BUCKETS)
IN_FLIGHT = Gauge("rezerv_http_requests_in_flight", "HTTP requests being handled now (kept by api/edge.py)")

_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request; the metric children are looked up once per label set."""
    key = (route, method, status)
    pair = _children.get(key)
    if pair is None:
        pair = _children[key] = (REQUESTS.labels(route, method, str(status)), LATENCY.labels(route))
    pair[0].inc()
    pair[1].observe(seconds)


class MetricsMiddleware:
    """Counts the requests FastAPI answers, by route template (the hot path counts its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_holder = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            observe(path, scope["method"], status_holder[0], time.perf_counter() - start)


def api_families(edge: Any) -> Any:
    """What the API counts as plain integers, as metric families (read when scraped): the token
    cache, the hot path's own counts, and the engine client's queues."""
    from actors.process_metrics import client_families, counter, labelled_counter

    verifier = edge.app.state.token_verifier
    yield labelled_counter(
        "rezerv_token_cache_reads",
        "Bearer tokens looked up in the verified-token cache, by result",
        ["result"],
        {"hit": verifier.hits, "miss": verifier.misses},
    )
    yield counter("rezerv_hot_path_answered", "Hot requests answered by the hot path itself", edge.answered)
    yield counter("rezerv_hot_path_fallbacks", "Hot requests handed to FastAPI (not the plain case)", edge.fallbacks)
    yield counter("rezerv_http_overloaded", "Hot requests refused with 429 (past the admission limit)", edge.rejected)
    inventory = edge.app.state.inventory
    if inventory is not None:
        yield from client_families(inventory)


def render_metrics() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


PROJECTION_LAG = Gauge(
    "rezerv_projection_lag_events", "Events the bookings projection has not applied yet (read at scrape time)"
)


CATALOG_LAG = Gauge(
    "rezerv_catalog_projection_lag_events", "Events the catalog projection has not applied yet (read at scrape time)"
)
CATALOG_BEHIND = Gauge(
    "rezerv_catalog_projection_behind_seconds",
    "Age of the oldest logged event the catalog has not applied yet; 0 when it is caught up (read at scrape time)",
)

LOG_CONSUMER_LAG = Gauge(
    "rezerv_log_consumer_lag_events",
    "Events a read model's log consumer (the notifier) has not scanned yet (read at scrape time)",
    ["consumer"],
)


async def refresh_log_lags(pool: Any, timeout_s: float = 1.0) -> None:
    """Read the outbox relay's and the projection's lag from PostgreSQL, where their checkpoints live.

    The relay and the projection run in Ray actors that Prometheus does not scrape; their positions
    are in the database, so the API's /metrics reports them. A slow or failing read leaves the
    previous values (and is visible in the API's own request metrics)."""
    import asyncio
    import contextlib

    from engine.adapters.pg_bookings import projection_lag
    from engine.adapters.pg_log import outbox_lag
    from engine.adapters.pg_rebuild import catalog_lag
    from engine.notifications import NOTIFIER
    from engine.relay import LAG

    consumers = (NOTIFIER,)

    async def consumer_lags() -> list[int]:
        return list(await asyncio.gather(*(outbox_lag(pool, c) for c in consumers)))

    with contextlib.suppress(Exception):
        outbox, projection, (catalog, behind), lags = await asyncio.wait_for(
            asyncio.gather(outbox_lag(pool), projection_lag(pool), catalog_lag(pool), consumer_lags()), timeout_s
        )
        LAG.set(outbox)
        PROJECTION_LAG.set(projection)
        CATALOG_LAG.set(catalog)
        CATALOG_BEHIND.set(behind)
        for consumer, lag in zip(consumers, lags, strict=True):
            LOG_CONSUMER_LAG.labels(consumer).set(lag)
