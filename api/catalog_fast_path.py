"""The catalog's cached pages served before FastAPI: a lean ASGI layer for the hottest reads.

A cache hit needs none of FastAPI's work (routing, dependency injection, validating a dozen
query parameters): it is one Redis round trip and a few bytes spliced together
(api/catalog_cache.py). Measured on this machine, FastAPI's share was about 1 ms of CPU per
request, several times the hit itself; answering hits here is what makes the cache pay
(BENCHMARKS.md). Anything else (a miss, another route, Redis failing) goes on to FastAPI
unchanged; a miss carries its lookup along so the route does not ask Redis again.

The key is the raw query string's (api/catalog_cache.py `page_key`): a page is only ever stored
by the route, after validating that very query and answering it with a 200, so a query that
was never valid is never found here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.catalog_cache import CACHE_READS, HIT, LOOKUP, MISS, CatalogPages, answer_parts, page_key, unpack
from api.metrics import ASGIApp, Receive, Scope, Send

LISTINGS = {"/events": "events", "/cars": "cars"}
DAY_DEPENDENT = {"cars"}  # listings whose pages depend on today's date (cars in maintenance today)


class CatalogFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        listing = LISTINGS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if listing is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        app = scope.get("app")
        pages: CatalogPages | None = getattr(getattr(app, "state", None), "catalog_pages", None)
        if pages is None or pages.cache is None:
            await self.app(scope, receive, send)
            return
        today = datetime.now(UTC).date() if listing in DAY_DEPENDENT else None
        key = page_key(listing, scope["query_string"], today)
        try:
            generation, stored = await pages.cache.lookup(listing, key)
        except Exception:
            await self.app(scope, receive, send)  # the route tries again and counts the error
            return
        if stored is None:
            CACHE_READS.labels(listing, MISS).inc()
            scope.setdefault("state", {})[LOOKUP] = (key, generation)
            await self.app(scope, receive, send)
            return
        CACHE_READS.labels(listing, HIT).inc()
        scope["route"] = self._route(app, scope["path"])  # for the request metrics' route label
        read_at, body = unpack(stored)
        content, headers = answer_parts(body, read_at, "cache", pages.ttl_s)
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        raw += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": content})

    def _route(self, app: Any, path: str) -> Any:
        route = self._routes.get(path)
        if route is None:
            route = next((r for r in getattr(app, "routes", ()) if getattr(r, "path", None) == path), None)
            self._routes[path] = route
        return route
