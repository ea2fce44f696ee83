"""The notifier's two workers: storing the booking outcomes of the log, and delivering webhooks.

`Notifier.handle` is a log consumer's handler (engine/log_consumer.py): a batch of outcome
messages becomes one `store` call (one statement), and the new rows wake the webhook worker. It
needs no inbox: the store skips message ids it has.

`WebhookDeliverer` sends the due deliveries, signed with the customer's webhook secret
(engine/signing.py), several at once; a 2xx answer ends a delivery, anything else (another
status, a refused connection, a timeout) schedules it again with a growing delay
(`next_attempt`), and after `max_attempts` failures it is moved to the dead-letter table. It
wakes when the notifier stored something, or every `poll_s` for the retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import orjson

from engine.following import wait_until
from engine.notifications import Delivery, body, next_attempt, plan
from engine.outbox import OutboxMessage
from engine.ports import NotificationStore
from engine.signing import HEADER, sign

log = logging.getLogger("rezerv.notifier")

# (url, body, headers, timeout) -> HTTP status (raises on a connection failure or timeout)
Post = Callable[[str, bytes, dict[str, str], float], Awaitable[int]]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Notifier:
    def __init__(
        self,
        store: NotificationStore,
        wake: asyncio.Event | None = None,
        *,
        max_age_s: float,  # REZERV_NOTIFY_MAX_AGE_S: its default lives in engine/config.py
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        """`max_age_s`: outcomes older than this are not notified (REZERV_NOTIFY_MAX_AGE_S; see
        notifications.plan)."""
        self.store = store
        self.wake = wake
        self.max_age_ms = int(max_age_s * 1000)
        self.clock = clock
        self.stored = 0

    async def handle(self, messages: Sequence[OutboxMessage]) -> None:
        now = self.clock()
        notifications = plan(messages, now - self.max_age_ms)
        if not notifications:
            return
        stored = await self.store.store(notifications, now)
        self.stored += stored
        if stored and self.wake is not None:
            self.wake.set()


class WebhookDeliverer:
    def __init__(
        self,
        store: NotificationStore,
        post: Post,
        max_attempts: int = 8,
        timeout_s: float = 5.0,
        concurrency: int = 16,
        batch: int = 200,
        poll_s: float = 1.0,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.store = store
        self.post = post
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.limit = asyncio.Semaphore(concurrency)
        self.batch = batch
        self.poll_s = poll_s
        self.clock = clock
        self.wake = asyncio.Event()
        self.sent = 0
        self.failures = 0
        self.parked = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()
            try:
                handled = await self.deliver_due()
            except Exception:  # the store down: try again at the next poll
                log.warning("webhook deliveries: reading the due ones failed; retrying", exc_info=True)
                handled = 0
            if handled < self.batch:
                await wait_until(stop, self.wake, self.poll_s)

    async def deliver_due(self) -> int:
        """Send every delivery due now (up to `batch`); returns how many were tried."""
        due = await self.store.due(self.clock(), self.batch)
        results = await asyncio.gather(*(self._send(d) for d in due))
        ok = [d.delivery_id for d, error in zip(due, results, strict=True) if error is None]
        await self.store.delivered(ok)
        for d, error in zip(due, results, strict=True):
            if error is None:
                continue
            attempts = d.attempts + 1
            if attempts >= self.max_attempts:
                self.parked += 1
                log.warning(
                    "webhook %s: gave up on notification %d after %d attempts (%s)", d.url, d.stored.id, attempts, error
                )
                await self.store.dead_letter(d.delivery_id, attempts, error, self.clock())
            else:
                await self.store.retry_later(d.delivery_id, attempts, next_attempt(attempts, self.clock()), error)
        return len(due)

    async def _send(self, d: Delivery) -> str | None:
        """None when delivered; else why not."""
        payload = orjson.dumps(body(d.stored))
        headers = {
            "content-type": "application/json",
            HEADER: sign(d.secret, payload, time.time()),
            "Rezerv-Notification-Id": str(d.stored.id),
        }
        async with self.limit:
            try:
                status = await self.post(d.url, payload, headers, self.timeout_s)
            except Exception as exc:
                self.failures += 1
                return f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= status < 300:
            self.sent += 1
            return None
        self.failures += 1
        return f"answered {status}"
