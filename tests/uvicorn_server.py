"""A uvicorn server in the test's own event loop, on a free port, with a given HTTP protocol:
what the tests of the API's protocol (api/http_protocol.py) serve their applications with."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from stack.processes import free_port


@asynccontextmanager
async def serving(app: Any, protocol: type) -> AsyncIterator[int]:
    """Serve `app` with `protocol` (uvloop, no lifespan, no access log) until the block ends;
    yields the port."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=protocol,
        loop="uvloop",
        log_level="warning",
        lifespan="off",
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for "started"
                await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task
