"""Live notifications for the Server-Sent Events streams of one API process.

One loop per process, running only while a stream is open, asks the store every `poll_s` for
the notifications of the customers with an open stream stored after its cursor (one query
whatever the number of streams), and hands each to the streams of its customer. Notifications
are stored with ids that grow in commit order (engine/adapters/pg_notifications.py), so a single
cursor misses none. The poll bounds the delay a stream adds (0.2 s by default).

A stream that falls behind (its queue full) drops the overflow: the client catches up with the
list route or by reconnecting with Last-Event-ID, which replays from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from engine.notifications import Stored
from engine.ports import NotificationStore

log = logging.getLogger("rezerv.api.notifications")
QUEUE_SIZE = 1_000
BATCH = 1_000


class NotificationHub:
    def __init__(self, store: NotificationStore, poll_s: float = 0.2) -> None:
        self.store = store
        self.poll_s = poll_s
        self.streams: dict[str, set[asyncio.Queue[Stored]]] = {}
        self.cursor: int | None = None
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, customer_id: str) -> asyncio.Queue[Stored]:
        queue: asyncio.Queue[Stored] = asyncio.Queue(QUEUE_SIZE)
        self.streams.setdefault(customer_id, set()).add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="notification-hub")
        return queue

    def unsubscribe(self, customer_id: str, queue: asyncio.Queue[Stored]) -> None:
        queues = self.streams.get(customer_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self.streams[customer_id]

    async def _run(self) -> None:
        failing = False
        while self.streams:
            try:
                if self.cursor is None:
                    self.cursor = await self.store.last_id()
                rows = await self.store.after(list(self.streams), self.cursor, BATCH)
            except Exception as exc:
                if not failing:
                    log.warning("live notifications: the store does not answer (%s); retrying", type(exc).__name__)
                failing = True
                await asyncio.sleep(1.0)
                continue
            failing = False
            for stored in rows:
                for queue in self.streams.get(stored.notification.customer_id, ()):
                    try:
                        queue.put_nowait(stored)
                    except asyncio.QueueFull:
                        self.dropped += 1
            if rows:
                self.cursor = max(self.cursor, rows[-1].id)
            if len(rows) < BATCH:
                await asyncio.sleep(self.poll_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
