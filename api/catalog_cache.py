"""Cache-aside for catalog pages, and the freshness every catalog answer carries.

A page is looked up in Redis under its listing's current generation (engine/ports.py PageCache):
a hit is answered from the cache; a miss reads PostgreSQL and stores the page for
REZERV_CATALOG_CACHE_TTL_S seconds. The catalog projection moves the generation after every
batch that changed the listing, so a change is visible on the next read, and no page older than
the TTL is ever served (Redis drops it). Redis unreachable: the page is read from PostgreSQL
(counted as an error), the API keeps answering.

Each answer says how fresh it is, in the body (`freshness`) and in the headers (`Age`,
`Cache-Control`, `X-Cache`): when its data was read from PostgreSQL and how old that is now,
whether it came from the cache, the longest it may be served, and `projected_through`, the
time of the newest logged event the catalog had applied (the read model trails the log by the
projection's lag). The stored value is the page's JSON with the read time in front, and the
freshness is spliced in at answer time, so a hit costs no JSON parsing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import orjson
from prometheus_client import Counter
from starlette.responses import Response

from engine.ports import PageCache

log = logging.getLogger("rezerv.api.catalog")

CACHE_READS = Counter(
    "rezerv_catalog_cache_reads_total",
    "Catalog page reads by listing and cache outcome (hit, miss, error: Redis failed, read from PostgreSQL)",
    ["listing", "result"],
)

HIT, MISS, ERROR = "hit", "miss", "error"


def iso_utc(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def pack(read_at_ms: int, body: bytes) -> bytes:
    return b"%d\n" % read_at_ms + body


def unpack(stored: bytes) -> tuple[int, bytes]:
    read_at, _, body = stored.partition(b"\n")
    return int(read_at), body


def answer(body: bytes, read_at_ms: int, source: str, max_age_s: float | None, now: int | None = None) -> Response:
    """The page `body` (a JSON object) with its freshness spliced in front, and the headers.

    `max_age_s` None: a page that is never cached (admin listings); it is not to be cached
    downstream either."""
    age_ms = max(0, (now if now is not None else now_ms()) - read_at_ms)
    freshness = {"source": source, "read_at": iso_utc(read_at_ms), "age_s": round(age_ms / 1000, 3)}
    headers = {"Age": str(age_ms // 1000), "X-Cache": "HIT" if source == "cache" else "MISS"}
    if max_age_s is None:
        headers["Cache-Control"] = "no-store"
    else:
        freshness["max_age_s"] = max_age_s
        headers["Cache-Control"] = f"public, max-age={max(0, int(max_age_s - age_ms / 1000))}"
    content = b'{"freshness":' + orjson.dumps(freshness) + (b"," + body[1:] if len(body) > 2 else b"}")
    return Response(content, media_type="application/json", headers=headers)


class CatalogPages:
    """Cache-aside over one PageCache (None: no cache, every read goes to PostgreSQL)."""

    def __init__(self, cache: PageCache | None, ttl_s: float) -> None:
        self.cache = cache if ttl_s > 0 else None
        self.ttl_s = ttl_s

    async def read(self, listing: str, key: str, load: Callable[[], Awaitable[bytes]]) -> Response:
        """The page `key` of `listing`: from the cache, or `load()` (its JSON body) then cached."""
        if self.cache is None:
            return answer(await load(), now_ms(), "database", None)
        try:
            generation, stored = await self.cache.lookup(listing, key)
        except Exception as exc:
            CACHE_READS.labels(listing, ERROR).inc()
            log.debug("catalog cache lookup failed: %r", exc)
            return answer(await load(), now_ms(), "database", self.ttl_s)
        if stored is not None:
            CACHE_READS.labels(listing, HIT).inc()
            read_at, body = unpack(stored)
            return answer(body, read_at, "cache", self.ttl_s)
        CACHE_READS.labels(listing, MISS).inc()
        read_at = now_ms()
        body = await load()
        try:
            await self.cache.store(listing, key, generation, pack(read_at, body), self.ttl_s)
        except Exception as exc:
            log.debug("catalog cache store failed: %r", exc)
        return answer(body, read_at, "database", self.ttl_s)
