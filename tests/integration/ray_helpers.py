"""Shards on the session's Ray, in a namespace of their own, pointed at a test database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from actors.client import InventoryClient, ray_client
from actors.factory import shard_handle
from engine.config import Settings


def shard_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        namespace=f"t-{uuid.uuid4().hex[:8]}",
        shard_count=overrides.pop("shard_count", 1),
        db_pool_size=2,
        **overrides,
    )


@asynccontextmanager
async def shards(settings: Settings) -> AsyncIterator[tuple[InventoryClient, list[Any]]]:
    """A client and the shard handles; the shards are killed (not restarted) afterwards."""
    import ray

    handles = [shard_handle(settings, i) for i in range(settings.shard_count)]
    client = ray_client(settings)
    try:
        yield client, handles
    finally:
        for handle in handles:
            ray.kill(handle, no_restart=True)
