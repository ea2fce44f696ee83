"""The paced generator (loadtest/paced.py) against a real local HTTP server whose delay the test sets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from loadtest.paced import PacedResult, run_paced


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(0.03)
        return web.Response(text="ok")

    async def missing(_request: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_each_request_is_timed_to_its_last_byte_so_a_30_ms_route_measures_at_least_30_ms(server: str) -> None:
    result = await run_paced(server, ["/slow"], users=4, seconds=1.0, think_s=(0.05, 0.1))
    summary = result.summary()
    assert summary["requests"] >= 12
    assert summary["p50_ms"] >= 30
    assert summary["p99_ms"] < 1000
    assert summary["statuses"] == {"200": summary["requests"]}


async def test_think_time_paces_the_users_so_the_rate_follows_users_over_think_time(server: str) -> None:
    result = await run_paced(server, ["/slow"], users=10, seconds=2.0, think_s=(0.4, 0.6))
    # each user: about 0.5 s of thinking + 0.03 s of request, after a start spread over 0.6 s
    assert 15 <= result.summary()["requests_per_s"] <= 25


async def test_other_statuses_are_counted_apart_and_a_refused_connection_is_an_error(server: str) -> None:
    answered = await run_paced(server, ["/slow", "/missing"], users=4, seconds=0.8, think_s=(0.01, 0.02))
    assert set(answered.statuses) == {200, 404}
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = await run_paced(f"http://127.0.0.1:{port}", ["/"], users=2, seconds=0.3, think_s=(0.01, 0.02))
    assert refused.latencies_s == []
    assert sum(refused.errors.values()) >= 2


def test_a_run_without_paths_or_users_is_refused() -> None:
    with pytest.raises(ValueError, match="no paths"):
        asyncio.run(run_paced("http://127.0.0.1:1", [], users=1, seconds=1))
    with pytest.raises(ValueError, match="users"):
        asyncio.run(run_paced("http://127.0.0.1:1", ["/"], users=0, seconds=1))


def test_the_summary_of_an_empty_run_has_zeros_not_errors() -> None:
    assert PacedResult(seconds=1.0).summary()["p99_ms"] == 0.0
