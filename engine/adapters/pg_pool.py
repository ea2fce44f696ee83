"""The asyncpg connection pool every rezerv process uses, sized for a 2-core machine."""

from __future__ import annotations

from typing import Any

import asyncpg


async def create_pool(url: str, size: int, **kwargs: Any) -> asyncpg.Pool:
    # statement_cache_size stays on: the hot statements are few and prepared once per connection.
    return await asyncpg.create_pool(url, min_size=1, max_size=size, command_timeout=30, **kwargs)
