"""The RevocationStore contract (engine/ports.py): one suite, run against the in-memory store
(tests/unit) and PostgreSQL (tests/integration). A subclass provides the `store` fixture."""

from __future__ import annotations

import time
import uuid

from engine.ports import RevocationStore


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class RevocationStoreContract:
    async def test_a_revoked_id_is_active_until_its_expiry(self, store: RevocationStore) -> None:
        live, gone = uuid.uuid4().hex, uuid.uuid4().hex
        assert await store.revoke(live, now_ms() + 60_000, "leaked")
        assert await store.revoke(gone, now_ms() - 1_000, "expired already")
        active = await store.active()
        assert live in active
        assert gone not in active

    async def test_revoking_twice_records_it_once(self, store: RevocationStore) -> None:
        token_id = uuid.uuid4().hex
        assert await store.revoke(token_id, now_ms() + 60_000, "first")
        assert not await store.revoke(token_id, now_ms() + 60_000, "again")
        assert token_id in await store.active()
