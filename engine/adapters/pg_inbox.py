"""Retention of the consumers' inbox (processed_messages).

Every message a consumer acts on leaves a row, written in the transaction of its effect, so that
a redelivery is dropped. A redelivery can only come while the broker still holds the message or
while the saga supervisor still re-sends it (only for sagas not yet ended), so rows older than
the retention (a week by default, the broker's usual retention) are deleted, a bounded slice per
sweep so that the delete never holds locks for long. Idempotent effects (a charge or a refund
per saga id) remain the second line of defence for anything older.
"""

from __future__ import annotations

import asyncpg

_PURGE = """
DELETE FROM processed_messages
 WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM processed_messages
     WHERE processed_at < now() - make_interval(secs => $1)
     LIMIT $2))
"""


async def purge_processed(pool: asyncpg.Pool, older_than_s: float, limit: int) -> int:
    """Delete up to `limit` inbox rows older than `older_than_s`; returns how many."""
    status = await pool.execute(_PURGE, older_than_s, limit)
    return int(status.rsplit(" ", 1)[-1])
