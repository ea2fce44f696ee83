"""Notifications, webhooks and their deliveries in PostgreSQL (engine/migrations/0033_notifications.sql).

A batch of notifications is stored by ONE statement (rows as arrays; a known message id is
skipped; a delivery is created for every new row whose customer has a webhook), after a
transaction-level advisory lock: batches of the two notifier consumers are stored one after the
other, so ids are committed in increasing order and the live stream can follow `id > last`. The
statement answers only how many rows were new: its one caller counts them, and returning every
row, sorted, with every column cost PostgreSQL a sort and the notifier 3% of its process's
samples at 16 users in a flash sale (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.domain.errors import StoreUnavailable
from engine.notifications import Delivery, Notification, Stored, Webhook

LOCK = 0x6E6F_7469_6679  # "notify": the notifier's insert lock

_COLUMNS = "id, message_id, customer_id, hold_id, booking_stream, outcome, reason, amount, at, read_at"

_STORE = """
WITH inserted AS (
    INSERT INTO notifications (message_id, customer_id, hold_id, booking_stream, outcome, reason, amount, at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                         $8::bigint[])
    ON CONFLICT (message_id) DO NOTHING
    RETURNING id, customer_id
), deliveries AS (
    INSERT INTO webhook_deliveries (notification_id, customer_id, next_attempt_at)
    SELECT i.id, i.customer_id, $9 FROM inserted i JOIN webhooks w ON w.customer_id = i.customer_id ORDER BY i.id
)
SELECT count(*) FROM inserted
"""

_DUE = f"""
SELECT d.id AS delivery_id, d.attempts, w.url, w.secret, {", ".join("n." + c for c in _COLUMNS.split(", "))}
  FROM webhook_deliveries d
  JOIN notifications n ON n.id = d.notification_id
  JOIN webhooks w ON w.customer_id = d.customer_id
 WHERE d.next_attempt_at <= $1
 ORDER BY d.next_attempt_at, d.notification_id LIMIT $2
"""


_PARK = """
INSERT INTO webhook_dead_letters (notification_id, customer_id, url, attempts, last_error, parked_at)
SELECT d.notification_id, d.customer_id, coalesce(w.url, ''), $2, $3, $4
  FROM webhook_deliveries d LEFT JOIN webhooks w ON w.customer_id = d.customer_id
 WHERE d.id = $1
"""


def _stored(r: asyncpg.Record) -> Stored:
    n = Notification(
        r["message_id"],
        r["customer_id"],
        r["hold_id"],
        r["booking_stream"],
        r["outcome"],
        r["reason"],
        r["amount"],
        r["at"],
    )
    return Stored(int(r["id"]), n, r["read_at"])


class PostgresNotifications:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def store(self, notifications: Sequence[Notification], now_ms: int) -> int:
        if not notifications:
            return 0
        columns = [
            list(c)
            for c in zip(
                *(
                    (n.message_id, n.customer_id, n.hold_id, n.booking_stream, n.outcome, n.reason, n.amount, n.at)
                    for n in notifications
                ),
                strict=True,
            )
        ]
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK)
                stored = await conn.fetchval(_STORE, *columns, now_ms)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"storing {len(notifications)} notifications: {exc}") from exc
        return int(stored)

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await self.pool.fetch(sql, *args)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"reading notifications: {exc}") from exc
        return rows

    async def _execute(self, sql: str, *args: object) -> str:
        try:
            return str(await self.pool.execute(sql, *args))
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"writing notifications: {exc}") from exc

    async def page(self, customer_id: str, before_id: int, limit: int, unread_only: bool) -> list[Stored]:
        unread = "AND read_at IS NULL" if unread_only else ""
        sql = (
            f"SELECT {_COLUMNS} FROM notifications WHERE customer_id = $1 AND id < $2 {unread} "
            "ORDER BY id DESC LIMIT $3"
        )
        return [_stored(r) for r in await self._fetch(sql, customer_id, before_id, limit)]

    async def mark_read(self, customer_id: str, ids: Sequence[int] | None, now_ms: int) -> int:
        if ids is None:
            status = await self._execute(
                "UPDATE notifications SET read_at = $2 WHERE customer_id = $1 AND read_at IS NULL", customer_id, now_ms
            )
        else:
            status = await self._execute(
                "UPDATE notifications SET read_at = $2 WHERE customer_id = $1 AND id = ANY($3::bigint[]) "
                "AND read_at IS NULL",
                customer_id,
                now_ms,
                list(ids),
            )
        return int(status.rsplit(" ", 1)[-1])

    async def after(self, customer_ids: Sequence[str], after_id: int, limit: int) -> list[Stored]:
        sql = (
            f"SELECT {_COLUMNS} FROM notifications WHERE customer_id = ANY($1::text[]) AND id > $2 ORDER BY id LIMIT $3"
        )
        return [_stored(r) for r in await self._fetch(sql, list(customer_ids), after_id, limit)]

    async def last_id(self) -> int:
        rows = await self._fetch("SELECT coalesce(max(id), 0) AS last FROM notifications")
        return int(rows[0]["last"])

    async def set_webhook(self, webhook: Webhook) -> None:
        await self._execute(
            "INSERT INTO webhooks (customer_id, url, secret) VALUES ($1, $2, $3) "
            "ON CONFLICT (customer_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, created_at = now()",
            webhook.customer_id,
            webhook.url,
            webhook.secret,
        )

    async def webhook(self, customer_id: str) -> Webhook | None:
        rows = await self._fetch("SELECT customer_id, url, secret FROM webhooks WHERE customer_id = $1", customer_id)
        return Webhook(rows[0][0], rows[0][1], rows[0][2]) if rows else None

    async def delete_webhook(self, customer_id: str) -> bool:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("DELETE FROM webhook_deliveries WHERE customer_id = $1", customer_id)
                status = await conn.execute("DELETE FROM webhooks WHERE customer_id = $1", customer_id)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"deleting a webhook: {exc}") from exc
        return str(status) != "DELETE 0"

    async def due(self, now_ms: int, limit: int) -> list[Delivery]:
        return [
            Delivery(int(r["delivery_id"]), _stored(r), r["url"], r["secret"], int(r["attempts"]))
            for r in await self._fetch(_DUE, now_ms, limit)
        ]

    async def delivered(self, delivery_ids: Sequence[int]) -> None:
        if delivery_ids:
            await self._execute("DELETE FROM webhook_deliveries WHERE id = ANY($1::bigint[])", list(delivery_ids))

    async def retry_later(self, delivery_id: int, attempts: int, at_ms: int, error: str) -> None:
        await self._execute(
            "UPDATE webhook_deliveries SET attempts = $2, next_attempt_at = $3, last_error = $4 WHERE id = $1",
            delivery_id,
            attempts,
            at_ms,
            error[:500],
        )

    async def dead_letter(self, delivery_id: int, attempts: int, error: str, now_ms: int) -> None:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    _PARK,
                    delivery_id,
                    attempts,
                    error[:500],
                    now_ms,
                )
                await conn.execute("DELETE FROM webhook_deliveries WHERE id = $1", delivery_id)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"parking a webhook delivery: {exc}") from exc

    async def dead_letters(self, customer_id: str) -> list[tuple[int, int, str]]:
        rows = await self._fetch(
            "SELECT notification_id, attempts, last_error FROM webhook_dead_letters WHERE customer_id = $1 "
            "ORDER BY notification_id",
            customer_id,
        )
        return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]
