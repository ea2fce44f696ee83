"""Where a request's InventoryClient comes from: app.state, created on first use over Ray.

One client per API process, because its value is coalescing: concurrent requests for the same
shard leave as one Ray call only if they share the client. Tests pass their own client to
`create_app(inventory=...)` and never reach Ray. The dependency is `async` so FastAPI calls it
inline instead of sending it to the thread pool on every request.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from actors.client import InventoryClient, ray_client
from api.dependencies import Ray
from engine.config import Settings
from engine.domain.errors import ShardUnavailable


async def get_inventory(request: Request) -> InventoryClient:
    return await inventory_of(request.app)


async def inventory_of(app: FastAPI) -> InventoryClient:
    """The app's client; the first call joins Ray (a ShardUnavailable if Ray does not answer)."""
    inventory: InventoryClient | None = app.state.inventory
    if inventory is not None:
        return inventory
    return await _connect(app)


async def _connect(app: FastAPI) -> InventoryClient:
    """Join Ray (in a thread: ray.init blocks for seconds) and build the client, once."""
    lock: asyncio.Lock | None = getattr(app.state, "inventory_lock", None)
    if lock is None:
        lock = app.state.inventory_lock = asyncio.Lock()
    async with lock:
        if app.state.inventory is None:
            settings: Settings = app.state.settings
            ray = app.state.dependencies.get("ray")
            if not isinstance(ray, Ray):
                ray = Ray(settings.ray_address, settings.namespace)
            try:
                await asyncio.to_thread(ray._connect)
            except Exception as exc:  # answered as 503: the client may retry later
                raise ShardUnavailable(f"Ray is not reachable: {type(exc).__name__}: {exc}") from exc
            app.state.inventory = ray_client(settings, retry_for_s=settings.request_retry_s)
    client: InventoryClient = app.state.inventory
    return client


Inventory = Annotated[InventoryClient, Depends(get_inventory)]
