"""The API's composition root (api/wiring.py): which adapter backs each port, decided in one place."""

from __future__ import annotations

from typing import Any, cast

import pytest

from api.catalog_cache import CatalogPages
from api.dependencies import Postgres, Redis
from api.revocation import InMemoryRevocations, PostgresOverApiPool
from api.routes_bookings import PostgresBookings
from api.routes_catalog import LazyPostgresCatalog
from api.sales import SalesOverApiPool
from api.wiring import Stores, compose
from engine.adapters.memory_accounts import InMemoryAccounts, InMemoryFailures
from engine.adapters.memory_topups import InMemoryTopups
from engine.adapters.pg_accounts import PostgresAccounts
from engine.adapters.pg_money import PostgresMoneyReads
from engine.adapters.pg_notifications import PostgresNotifications
from engine.adapters.pg_topups import PostgresTopups
from engine.adapters.redis_page_cache import RedisPageCache
from engine.adapters.redis_throttle import RedisFailures
from engine.config import Settings
from engine.domain.errors import StoreUnavailable


def test_the_parts_a_caller_gives_are_used_as_given() -> None:
    given: dict[str, Any] = {
        "bookings": object(),
        "revocations": InMemoryRevocations(),
        "sales": object(),
        "catalog": object(),
        "catalog_pages": CatalogPages(None, 0),
        "stores": Stores(InMemoryAccounts(), InMemoryFailures(), InMemoryTopups(), cast(Any, object())),
    }
    parts = compose(Settings(), [], **given)
    for name, value in given.items():
        assert getattr(parts, name) is value, name


async def test_without_postgresql_the_accounts_live_in_memory_and_money_reads_answer_unavailable() -> None:
    parts = compose(Settings(), dependencies=[])
    assert isinstance(parts.stores.accounts, InMemoryAccounts)
    assert isinstance(parts.stores.topups, InMemoryTopups)
    assert parts.revocations is None  # revoked tokens are then known to this process only
    assert parts.catalog_pages.cache is None
    with pytest.raises(StoreUnavailable):
        await parts.stores.money_reads.pending_payments("alice")


def test_with_postgresql_and_redis_every_store_and_read_model_is_built_over_them() -> None:
    postgres = Postgres("postgresql://nobody@127.0.0.1:1/none", pool_size=2)
    redis = Redis("redis://127.0.0.1:1/0")
    parts = compose(Settings(namespace="wiring-test"), dependencies=[postgres, redis])

    assert parts.dependencies == [postgres, redis]
    for model, kind in ((parts.bookings, PostgresBookings), (parts.catalog, LazyPostgresCatalog),
                        (parts.sales, SalesOverApiPool)):  # fmt: skip
        assert isinstance(model, kind)
        assert cast(Any, model).postgres is postgres
    assert isinstance(parts.revocations, PostgresOverApiPool)
    assert isinstance(parts.catalog_pages.cache, RedisPageCache)
    stores = parts.stores
    assert isinstance(stores.accounts, PostgresAccounts)
    assert isinstance(stores.failures, RedisFailures)
    assert isinstance(stores.topups, PostgresTopups)
    assert isinstance(stores.money_reads, PostgresMoneyReads)
    assert isinstance(stores.notifications, PostgresNotifications)


def test_a_redis_dependency_without_an_address_caches_no_catalog_pages() -> None:
    parts = compose(Settings(), dependencies=[Redis("")])
    assert parts.catalog_pages.cache is None
    assert isinstance(parts.stores.failures, InMemoryFailures)  # and no PostgreSQL: all in memory
