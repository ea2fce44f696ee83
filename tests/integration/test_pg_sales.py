"""The PostgreSQL sales read model passes the contract."""

from __future__ import annotations

import asyncpg
import pytest

from engine.adapters.pg_sales import PostgresSales
from tests.contract.sales import SalesReadModelContract


class TestPostgresSales(SalesReadModelContract):
    @pytest.fixture
    def sales(self, pool: asyncpg.Pool) -> PostgresSales:
        return PostgresSales(pool)
