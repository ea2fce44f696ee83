"""The unit-test guard itself: reaching for a server or Ray from tests/unit must fail."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.unit.guard import UnitTestTouchedServer


def test_tcp_connection_is_refused() -> None:
    with pytest.raises(UnitTestTouchedServer):
        socket.create_connection(("127.0.0.1", 9), timeout=0.1)


def test_asyncio_connection_is_refused() -> None:
    async def connect() -> None:
        await asyncio.open_connection("127.0.0.1", 9)

    with pytest.raises(UnitTestTouchedServer):
        asyncio.run(connect())


def test_starting_ray_is_refused() -> None:
    import ray

    with pytest.raises(UnitTestTouchedServer):
        ray.init()


def test_server_fixtures_are_refused(request: pytest.FixtureRequest) -> None:
    with pytest.raises(UnitTestTouchedServer):
        request.getfixturevalue("database_url")
