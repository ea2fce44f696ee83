"""/readyz names what is failing in plain words; why it fails stays in the log."""

from __future__ import annotations

import asyncio

import pytest

from api.app import create_app
from engine.config import Settings
from tests.unit.api.asgi_client import AsgiClient


class Broken:
    name = "postgres"

    async def check(self) -> None:
        raise ConnectionRefusedError("connect to 10.1.2.3:5432 as postgres:hunter2 failed")

    async def close(self) -> None:
        return None


class Hung:
    name = "kafka"

    async def check(self) -> None:
        await asyncio.sleep(60)

    async def close(self) -> None:
        return None


class Fine:
    name = "redis"

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_readyz_names_the_failing_dependencies_without_their_errors(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("api.dependencies.CHECK_TIMEOUT_S", 0.05)
    app = create_app(settings, dependencies=[Broken(), Hung(), Fine()])
    reply = await AsgiClient(app).get("/readyz")
    assert reply.status == 503
    body = reply.json()
    assert body["failing"] == ["postgres", "kafka"]
    assert body["checks"]["postgres"]["detail"] == "not reachable"
    assert body["checks"]["kafka"]["detail"].startswith("no answer within")
    assert body["checks"]["redis"]["ok"] is True
    assert "10.1.2.3" not in reply.body.decode()
    assert "10.1.2.3" in caplog.text  # the operator still sees it
