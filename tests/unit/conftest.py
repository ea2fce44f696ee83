"""Unit tests run with no server and no Ray: any attempt fails the test loudly.

The guard replaces the network connect calls and `ray.init` for every unit test, and shadows
the session server fixtures so a unit test cannot even ask for one.
"""

from __future__ import annotations

import pytest

from tests.unit.guard import install_guard, refuse_fixture


@pytest.fixture(autouse=True)
def _no_servers_in_unit_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    install_guard(monkeypatch)


pg_server = refuse_fixture("pg_server")
database_url = refuse_fixture("database_url")
valkey_server = refuse_fixture("valkey_server")
redis_url = refuse_fixture("redis_url")
kafka_server = refuse_fixture("kafka_server")
kafka_bootstrap = refuse_fixture("kafka_bootstrap")
ray_cluster = refuse_fixture("ray_cluster")
