"""The FastAPI application: HTTP in, commands out, errors as RFC 9457 problems.

`create_app()` is the uvicorn factory (`uvicorn --factory api.app:create_app`). Dependencies
(PostgreSQL, Redis, Kafka, Ray) are connected lazily and checked by /readyz; routers for the
domain are mounted from their own modules. What uvicorn runs is the edge (api/edge.py: limits,
authentication before the body, admission, the hot path) in front of the FastAPI application.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.responses import PlainTextResponse, Response

from actors import gc_tuning
from actors.client import InventoryClient
from api.auth import TokenVerifier
from api.catalog_cache import CatalogPages
from api.catalog_fast_path import CatalogFastPath
from api.cursors import CursorCodec
from api.dependencies import Dependency, run_check
from api.edge import Edge
from api.errors import install_error_handlers
from api.hot_routes import HotRoutes
from api.metrics import MetricsMiddleware, api_families, refresh_log_lags, render_metrics
from api.metrics_targets import all_targets
from api.openapi import install_openapi
from api.problems import install_problem_handlers
from api.responses import OrjsonResponse
from api.revocation import RevokedTokens
from api.routes_accounts import router as accounts_router
from api.routes_bookings import router as bookings_router
from api.routes_catalog import router as catalog_router
from api.routes_inventory import router as inventory_router
from api.routes_money import router as money_router
from api.routes_notifications import router as notifications_router
from api.routes_tokens import router as tokens_router
from api.sales import refresh_sales_metrics
from api.sales import router as sales_router
from api.wiring import Stores, compose, install
from engine import tracing
from engine.config import Settings
from engine.ports import BookingsRepository, CatalogReader, RevocationStore, SalesReadModel

log = logging.getLogger("rezerv.api")


def create_app(
    settings: Settings | None = None,
    dependencies: list[Dependency] | None = None,
    inventory: InventoryClient | None = None,
    bookings: BookingsRepository | None = None,
    hot_path: bool = True,
    revocations: RevocationStore | None = None,
    catalog: CatalogReader | None = None,
    catalog_pages: CatalogPages | None = None,
    stores: Stores | None = None,
    sales: SalesReadModel | None = None,
) -> Edge:
    """`inventory`: the engine client to use (tests pass one on fakes); None builds one over Ray on first use.

    `bookings`: the bookings read model to answer from (tests pass an in-memory one); None reads
    PostgreSQL through the "postgres" dependency's pool. `revocations`: where revoked token ids
    are kept (tests pass an in-memory store); None uses PostgreSQL likewise (none without it).
    `catalog`, `catalog_pages`: the catalog read model and its page cache (tests pass their own);
    None reads PostgreSQL and caches in the "redis" dependency's Redis.
    `sales`: the sales read model (tests pass an in-memory one); None reads PostgreSQL likewise.

    `stores`: accounts, money and notifications (api/wiring.py; tests pass in-memory ones).

    `hot_path=False` leaves the hot requests to FastAPI too (the tests compare the two)."""
    settings = settings or Settings.from_env()
    tracing.configure_from(settings, "rezerv-api")
    parts = compose(settings, dependencies, bookings, revocations, sales, catalog, catalog_pages, stores)
    deps = parts.dependencies
    revoked = RevokedTokens(parts.revocations.active if parts.revocations else None, settings.revocation_refresh_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Try every dependency once so the first real request does not pay for connecting, and
        # load the revoked tokens before the first request is let in.
        await asyncio.gather(*(run_check(d) for d in deps))
        gc_tuning.settle_request_loop()
        try:
            await asyncio.wait_for(revoked.refresh(), 5.0)
        except Exception as exc:
            log.warning("revoked tokens not loaded at start (%s); retrying in the background", type(exc).__name__)
        stop = asyncio.Event()
        refresher = asyncio.create_task(revoked.run(stop), name="revoked-tokens")
        yield
        stop.set()
        await refresher
        await app.state.notification_hub.close()
        app.state.passwords.close()
        if isinstance(app.state.inventory, InventoryClient):
            await app.state.inventory.close()
        await asyncio.gather(*(d.close() for d in deps), return_exceptions=True)

    app = FastAPI(
        title="rezerv",
        version="0.1.0",
        summary="Reservations for tickets and rental cars, without a lock on the hot path.",
        default_response_class=OrjsonResponse,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.dependencies = {d.name: d for d in deps}
    app.state.inventory = inventory
    app.state.bookings = parts.bookings
    app.state.revocations = parts.revocations
    app.state.sales = parts.sales
    app.state.revoked_tokens = revoked
    app.state.token_verifier = TokenVerifier(settings, revoked)
    app.state.catalog = parts.catalog
    app.state.catalog_pages = parts.catalog_pages
    app.state.cursors = CursorCodec(settings.jwt_secret)
    install(app, settings, parts.stores)
    install_problem_handlers(app)
    install_error_handlers(app)
    app.add_middleware(CatalogFastPath)  # inside the metrics: cache hits are counted as requests too
    app.add_middleware(MetricsMiddleware)

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Every dependency answers (PostgreSQL, Redis, Kafka, Ray); 503 naming the failing ones",
        responses={503: {"description": "a dependency is not ready"}},
    )
    async def readyz() -> Response:
        results = await asyncio.gather(*(run_check(d) for d in deps))
        checks = {d.name: r.as_json() for d, r in zip(deps, results, strict=True)}
        failing = [name for name, r in checks.items() if not r["ok"]]
        body = {"status": "ready" if not failing else "not ready", "failing": failing, "checks": checks}
        return OrjsonResponse(body, status_code=503 if failing else 200)

    @app.get(
        "/metrics", tags=["operations"], summary="Prometheus metrics (text format)", response_class=PlainTextResponse
    )
    async def metrics() -> Response:
        postgres = app.state.dependencies.get("postgres")
        if postgres is not None and getattr(postgres, "pool", None) is not None:
            await asyncio.gather(
                refresh_log_lags(postgres.pool),
                refresh_sales_metrics(app.state.sales, settings.metrics_top_entities),
            )
        elif sales is not None:  # a given read model (tests)
            await refresh_sales_metrics(app.state.sales, settings.metrics_top_entities)
        payload, content_type = render_metrics()
        return Response(payload, media_type=content_type)

    @app.get(
        "/metrics/targets",
        tags=["operations"],
        summary="Every metrics endpoint of the system (Prometheus HTTP service discovery format)",
    )
    async def metrics_targets() -> list[dict[str, object]]:
        """The API and each shard and saga service process: `[{"targets": ["host:port"],
        "labels": {"process": ..., "role": ...}}]`. Prometheus's `http_sd_configs` and `rezerv top`
        read it."""
        return await all_targets(app)

    app.include_router(inventory_router)
    app.include_router(bookings_router)
    app.include_router(tokens_router)
    app.include_router(catalog_router)
    app.include_router(accounts_router)
    app.include_router(money_router)
    app.include_router(notifications_router)
    app.include_router(sales_router)
    install_openapi(app)
    edge = Edge(app, HotRoutes(app) if hot_path else None)
    from actors import process_metrics

    process_metrics.start(settings, endpoint=False)  # the API's metrics are its own /metrics
    process_metrics.register_source("api", lambda: api_families(edge))
    return edge
