"""The fast path for cached catalog pages (api/catalog_fast_path.py): hits are answered without
the application, anything else reaches it, and a miss hands its lookup on."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import date
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from api.catalog_cache import LOOKUP, CatalogPages, pack, page_key
from api.catalog_fast_path import CatalogFastPath
from engine.adapters.memory_page_cache import InMemoryPageCache


class Inner:
    """The application behind the fast path: records what reached it."""

    def __init__(self) -> None:
        self.scopes: list[MutableMapping[str, Any]] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


class Broken(InMemoryPageCache):
    async def lookup(self, kind: str, key: str) -> tuple[int, bytes | None]:
        raise ConnectionError("redis down")


async def call(path: str, query: bytes, pages: CatalogPages, method: str = "GET") -> tuple[Inner, list[Any]]:
    inner = Inner()
    app = SimpleNamespace(state=SimpleNamespace(catalog_pages=pages), routes=[SimpleNamespace(path=path)])
    scope = {"type": "http", "method": method, "path": path, "query_string": query, "app": app, "headers": []}
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request"}

    await CatalogFastPath(inner)(scope, receive, send)
    return inner, sent


async def stored(cache: InMemoryPageCache, listing: str, query: bytes, body: dict[str, Any]) -> None:
    generation, _ = await cache.lookup(listing, page_key(listing, query))
    await cache.store(listing, page_key(listing, query), generation, pack(1_800_000_000_000, orjson.dumps(body)), 30)


async def test_a_hit_is_answered_without_the_application() -> None:
    cache = InMemoryPageCache()
    await stored(cache, "events", b"q=jazz&limit=2", {"items": [1, 2], "next_cursor": None})
    inner, sent = await call("/events", b"limit=2&q=jazz", CatalogPages(cache, 30))  # any parameter order
    assert inner.scopes == []
    assert sent[0]["status"] == 200
    headers = dict(sent[0]["headers"])
    assert headers[b"x-cache"] == b"HIT"
    assert headers[b"content-type"] == b"application/json"
    body = orjson.loads(sent[1]["body"])
    assert body["items"] == [1, 2]
    assert body["freshness"]["source"] == "cache"
    assert int(headers[b"content-length"]) == len(sent[1]["body"])


async def test_a_miss_goes_on_with_its_lookup() -> None:
    cache = InMemoryPageCache()
    await cache.invalidate(["events"])
    inner, sent = await call("/events", b"q=opera", CatalogPages(cache, 30))
    assert sent[0]["status"] == 299
    [scope] = inner.scopes
    assert scope["state"][LOOKUP] == (page_key("events", b"q=opera"), 1)


@pytest.mark.parametrize(
    ("path", "method", "pages"),
    [
        ("/events", "POST", CatalogPages(InMemoryPageCache(), 30)),
        ("/events/e1", "GET", CatalogPages(InMemoryPageCache(), 30)),
        ("/admin/events", "GET", CatalogPages(InMemoryPageCache(), 30)),
        ("/events", "GET", CatalogPages(None, 0)),
        ("/cars", "GET", CatalogPages(Broken(), 30)),
    ],
)
async def test_anything_else_reaches_the_application_untouched(path: str, method: str, pages: CatalogPages) -> None:
    inner, _ = await call(path, b"q=x", pages, method)
    [scope] = inner.scopes
    assert LOOKUP not in scope.get("state", {})


def test_a_page_key_is_its_query_in_any_order_and_for_cars_its_day() -> None:
    assert page_key("events", b"a=1&b=2") == page_key("events", b"b=2&a=1")
    assert page_key("events", b"a=1") != page_key("cars", b"a=1")
    assert page_key("events", b"a=1&cursor=x") != page_key("events", b"a=1&cursor=y")
    assert page_key("cars", b"a=1", date(2027, 1, 1)) != page_key("cars", b"a=1", date(2027, 1, 2))


async def test_a_page_expires_ttl_after_it_was_read_not_after_it_was_stored() -> None:
    """A slow read must not stretch the page's life: its age counts from before the read."""
    from engine.ports import ManualClock

    clock = ManualClock()
    cache = InMemoryPageCache(clock)
    pages = CatalogPages(cache, 2.0, clock.now_ms)

    async def slow_read() -> bytes:
        clock.advance(1_500)  # the database took 1.5 s
        return b'{"items": []}'

    await pages.read("events", "k", slow_read)
    clock.advance(400)
    assert (await cache.lookup("events", "k"))[1] is not None, "1.9 s after the read: still served"
    clock.advance(200)
    assert (await cache.lookup("events", "k"))[1] is None, "2.1 s after the read: gone"
