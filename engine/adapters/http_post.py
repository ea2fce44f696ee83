"""Posting webhook bodies over HTTP (aiohttp): the `Post` of engine/notifier.py."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from engine.notifier import Post


def aiohttp_post() -> tuple[Post, Callable[[], Awaitable[None]]]:
    """A `Post` over one aiohttp session (and its closer)."""
    import aiohttp

    session: aiohttp.ClientSession | None = None

    async def post(url: str, data: bytes, headers: dict[str, str], timeout_s: float) -> int:
        nonlocal session
        if session is None:
            session = aiohttp.ClientSession()
        async with session.post(url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
            return r.status

    async def close() -> None:
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()

    return post, close
