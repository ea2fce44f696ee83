"""What makes a unit test fail when it reaches for a server or Ray."""

from __future__ import annotations

import socket
from typing import Any

import pytest


class UnitTestTouchedServer(AssertionError):
    """A unit test opened a network connection or started Ray; move it to tests/integration."""


def _refuse_connect(self: socket.socket, address: Any, *args: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise UnitTestTouchedServer(f"unit test tried to connect to {address!r}")
    return _original_connect(self, address, *args)


def _refuse_connect_ex(self: socket.socket, address: Any, *args: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise UnitTestTouchedServer(f"unit test tried to connect to {address!r}")
    return _original_connect_ex(self, address, *args)


_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex


def _refuse_ray(*_args: Any, **_kwargs: Any) -> Any:
    raise UnitTestTouchedServer("unit test tried to start or join Ray")


def install_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _refuse_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse_connect_ex)
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a runtime dependency
        return
    monkeypatch.setattr(ray, "init", _refuse_ray)


def refuse_fixture(name: str) -> Any:
    @pytest.fixture(name=name)
    def _refused() -> None:
        raise UnitTestTouchedServer(f"unit tests may not use the {name!r} fixture; use tests/integration")

    return _refused
