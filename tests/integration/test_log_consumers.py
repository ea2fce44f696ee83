"""The read model fed from the real log (engine/log_consumer.py, as actors/wiring.py builds it):
the notifier reads its messages from PostgreSQL's event log, and a batch read again (a crash
before the checkpoint was saved) changes nothing."""

from __future__ import annotations

import asyncpg

from engine.adapters.pg_event_store import PostgresEventStore
from engine.adapters.pg_log import PostgresLogReader
from engine.adapters.pg_notifications import PostgresNotifications
from engine.log_consumer import LogConsumer
from engine.notifications import NOTIFIER, OUTCOMES
from engine.notifier import Notifier
from tests.contract.notifications import WEEK_S
from tests.log_writing import write
from tests.unit.test_notifications import outcomes


async def notified(pool: asyncpg.Pool) -> list[tuple[str, str, str]]:
    rows = await pool.fetch("SELECT customer_id, outcome, message_id FROM notifications ORDER BY id")
    return [(r["customer_id"], r["outcome"], r["message_id"]) for r in rows]


async def drain(consumer: LogConsumer) -> None:
    while await consumer.run_once():
        pass


async def test_the_notifier_stores_each_outcome_of_the_log_once_even_read_twice(pool: asyncpg.Pool) -> None:
    await write(PostgresEventStore(pool), outcomes())
    notifier = Notifier(PostgresNotifications(pool), max_age_s=WEEK_S)
    reader = PostgresLogReader(pool)
    await drain(LogConsumer(NOTIFIER, reader, notifier.handle, OUTCOMES, batch=3))
    stored = await notified(pool)
    # The hold and the payment decision are no outcomes; the confirmation of schema 1 names no customer.
    assert [(c, o) for c, o, _ in stored] == [
        ("ann", "CONFIRMED"),
        ("bob", "RELEASED"),
        ("cy", "EXPIRED"),
        ("ann", "CANCELLED"),
        ("ann", "REFUNDED"),
    ]
    assert [m for _, _, m in stored] == ["event/e1@2", "event/e1@3", "car/c1@1", "event/e1@4", "wallet/ann@1"]
    # The same log read again from its start (a checkpoint that was never saved): nothing new.
    await drain(LogConsumer("notifier-again", reader, notifier.handle, OUTCOMES))
    assert await notified(pool) == stored
    assert notifier.stored == 5
