"""Test servers never take a port `rezerv up` uses by default (the quick-start test needs them)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from engine.config import Settings
from stack import processes
from stack.servers import RAY_WORKER_PORTS


def test_the_default_ports_are_every_port_setting_of_a_fresh_configuration() -> None:
    defaults = Settings()
    expected = {getattr(defaults, name) for name in vars(defaults) if name.endswith("_port")}
    assert processes.default_ports() == expected
    assert {8000, 25432} <= processes.default_ports()


def test_a_free_port_is_never_a_default_nor_one_handed_out_before(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter([25432, 8000, 23456, 23456, 23457])

    class Draws:
        def randrange(self, _low: int, _high: int) -> int:
            return next(drawn)

    monkeypatch.setattr(processes, "_draw", Draws())
    monkeypatch.setattr(processes, "_handed_out", set())
    assert processes.free_port() == 23456
    assert processes.free_port() == 23457, "a port handed out before may not be bound yet"


def test_free_ports_lie_between_rays_worker_ports_and_the_ports_the_kernel_picks_itself() -> None:
    low, _high = processes.ephemeral_ports()
    ports = {processes.free_port() for _ in range(50)}
    assert len(ports) == 50
    for port in ports:
        assert processes.FREE_PORTS_FROM <= port < low, "the kernel hands out its own range to Ray and to clients"
        assert port > RAY_WORKER_PORTS[1]
        assert port not in processes.default_ports()
        assert processes.port_is_free(port)


def test_the_kernels_own_range_is_read_from_the_system() -> None:
    low, high = processes.ephemeral_ports()
    assert (low, high) == tuple(int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())


def test_a_port_held_for_a_moment_is_waited_for_and_one_held_longer_is_refused() -> None:
    import threading
    import time

    from stack.processes import StartupError, require_free_port

    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    with pytest.raises(StartupError, match=f"Port {port}"):
        require_free_port(port, "a test", "X", patience_s=0.3)
    threading.Timer(0.3, holder.close).start()
    started = time.monotonic()
    require_free_port(port, "a test", "X", patience_s=3.0)
    assert 0.2 < time.monotonic() - started < 3.0


@pytest.mark.parametrize("name", sorted(n for n in vars(Settings()) if n.endswith("_port")))
def test_no_default_port_can_be_held_by_an_outgoing_connection_or_a_ray_worker(name: str) -> None:
    port = getattr(Settings(), name)
    low, high = processes.ephemeral_ports()
    assert not low <= port <= high, f"{name}={port} lies in the kernel's ephemeral range {low}-{high}"
    assert not RAY_WORKER_PORTS[0] <= port <= RAY_WORKER_PORTS[1], f"{name}={port} lies in Ray's worker ports"
