"""Revoked tokens: the in-memory store passes the contract, and the per-worker set refreshes,
survives an unreachable store and answers without I/O."""

from __future__ import annotations

import asyncio

import pytest

from api.revocation import InMemoryRevocations, RevokedTokens
from tests.contract.revocations import RevocationStoreContract, now_ms


class TestInMemoryRevocations(RevocationStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryRevocations:
        return InMemoryRevocations()


async def test_the_set_follows_the_store_within_a_refresh_period() -> None:
    store = InMemoryRevocations()
    revoked = RevokedTokens(store.active, refresh_s=0.02)
    stop = asyncio.Event()
    task = asyncio.create_task(revoked.run(stop))
    try:
        await store.revoke("t1", now_ms() + 60_000, "leaked")
        await asyncio.sleep(0.1)
        assert revoked.is_revoked("t1")
        assert not revoked.is_revoked("t2")
    finally:
        stop.set()
        await task


async def test_an_unreachable_store_keeps_the_last_set() -> None:
    calls = 0

    async def flaky() -> set[str]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionRefusedError("store down")
        return {"t1"}

    revoked = RevokedTokens(flaky, refresh_s=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(revoked.run(stop))
    await asyncio.sleep(0.1)
    stop.set()
    await task
    assert calls > 2
    assert revoked.is_revoked("t1")


def test_a_revocation_taken_here_counts_at_once() -> None:
    revoked = RevokedTokens(None)
    revoked.add("t9")
    assert revoked.is_revoked("t9")
