"""Concurrent lookups by key, coalesced into one query per event-loop tick.

Under load many requests read one row each (`GET /bookings/{id}` after every hold). A query
costs PostgreSQL and asyncpg far more per statement than per row, so the keys asked for while a
query is out, or in the same tick, leave together in the next one (`WHERE key = ANY($1)`), with
at most `max_in_flight` queries at once: batches grow with load, as the engine client's do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

FetchMany = Callable[[Sequence[K]], Awaitable[Mapping[K, V]]]


class Coalescer(Generic[K, V]):
    def __init__(self, fetch_many: FetchMany[K, V], max_in_flight: int = 2, batch_max: int = 500) -> None:
        self.fetch_many = fetch_many
        self.max_in_flight = max_in_flight
        self.batch_max = batch_max
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.queries = 0
        self.keys = 0

    def get(self, key: K) -> asyncio.Future[V | None]:
        """The value for `key` (None if there is none), or the fetch's exception."""
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        self._schedule()
        return future

    def _schedule(self) -> None:
        if not self._scheduled and self._in_flight < self.max_in_flight and self._waiting:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        loop = asyncio.get_running_loop()
        while self._waiting and self._in_flight < self.max_in_flight:
            keys = list(self._waiting)[: self.batch_max]
            batch = {key: self._waiting.pop(key) for key in keys}
            self._in_flight += 1
            task = loop.create_task(self._fetch(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fetch(self, batch: dict[K, list[asyncio.Future[V | None]]]) -> None:
        try:
            self.queries += 1
            self.keys += len(batch)
            found = await self.fetch_many(list(batch))
        except Exception as exc:
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
        else:
            for key, futures in batch.items():
                value = found.get(key)
                for future in futures:
                    if not future.done():
                        future.set_result(value)
        finally:
            self._in_flight -= 1
            self._schedule()
