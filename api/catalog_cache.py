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

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

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


def answer_parts(
    body: bytes, read_at_ms: int, source: str, max_age_s: float | None, now: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The page `body` (a JSON object) with its freshness spliced in front, and its headers.

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
    return content, headers


def answer(body: bytes, read_at_ms: int, source: str, max_age_s: float | None, now: int | None = None) -> Response:
    content, headers = answer_parts(body, read_at_ms, source, max_age_s, now)
    return Response(content, media_type="application/json", headers=headers)


def page_key(listing: str, query_string: bytes, today: date | None = None) -> str:
    """The cache key of a page: its listing, its query string's parameters in one order, and (for
    a listing whose content depends on the day) the day.

    From the raw query, not the validated one, so that the fast path (api/catalog_fast_path.py)
    can look a page up before FastAPI parses anything. Safe because only a page that was
    validated and answered with a 200 is ever stored, under the key of its own query string."""
    canonical = b"&".join(sorted(query_string.split(b"&")))  # raw parameters in one order: no decoding
    day = today.isoformat().encode() if today else b""
    return hashlib.sha256(listing.encode() + b"?" + canonical + b"|" + day).hexdigest()[:32]


LOOKUP = "catalog_lookup"
"""Where the fast path leaves (key, generation) of a miss in the request's state, so the route
does not ask Redis a second time."""


class CatalogPages:
    """Cache-aside over one PageCache (None: no cache, every read goes to PostgreSQL)."""

    def __init__(self, cache: PageCache | None, ttl_s: float, clock: Callable[[], int] = now_ms) -> None:
        self.cache = cache if ttl_s > 0 else None
        self.ttl_s = ttl_s
        self.clock = clock  # epoch ms

    async def read(
        self, listing: str, key: str, load: Callable[[], Awaitable[bytes]], state: dict[str, Any] | None = None
    ) -> Response:
        """The page `key` of `listing`: from the cache, or `load()` (its JSON body) then cached.

        `state`: the request's ASGI state, where the fast path may have left its lookup."""
        if self.cache is None:
            return answer(await load(), self.clock(), "database", None)
        looked = (state or {}).get(LOOKUP)
        if looked is not None and looked[0] == key:
            generation = looked[1]  # the fast path missed a moment ago (and counted it)
        else:
            try:
                generation, stored = await self.cache.lookup(listing, key)
            except Exception as exc:
                CACHE_READS.labels(listing, ERROR).inc()
                log.debug("catalog cache lookup failed: %r", exc)
                return answer(await load(), self.clock(), "database", self.ttl_s)
            if stored is not None:
                CACHE_READS.labels(listing, HIT).inc()
                read_at, body = unpack(stored)
                return answer(body, read_at, "cache", self.ttl_s, self.clock())
            CACHE_READS.labels(listing, MISS).inc()
        read_at = self.clock()
        body = await load()
        # The page's age counts from before the read, so it expires TTL after that, not after
        # the store: never served older than the TTL, however long the read took.
        left_s = self.ttl_s - (self.clock() - read_at) / 1000
        if left_s > 0:
            try:
                await self.cache.store(listing, key, generation, pack(read_at, body), left_s)
            except Exception as exc:
                log.debug("catalog cache store failed: %r", exc)
        return answer(body, read_at, "database", self.ttl_s, self.clock())
