"""Ray's worker ports never include the head's configured ports (stack/servers.py)."""

from __future__ import annotations

import pytest

from stack.servers import RAY_WORKER_PORTS, worker_port_range


def test_the_default_range_when_no_configured_port_is_in_it() -> None:
    assert worker_port_range((56380, 8265, 56381)) == RAY_WORKER_PORTS


@pytest.mark.parametrize("ports", [(18304, 18306, 18305), (56380, 10002, 56381), (19999, 8265, 22000)])
def test_a_range_that_misses_every_configured_port(ports: tuple[int, ...]) -> None:
    low, high = worker_port_range(ports)
    assert high - low >= 9000
    assert not any(low <= p <= high for p in ports)
