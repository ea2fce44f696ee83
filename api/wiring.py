"""The API process's composition root: every adapter the API uses is chosen and built here.

`compose` takes what a caller gives (the unit tests pass in-memory stores, read models and a
fake engine client through `create_app`) and builds the rest over the process's dependencies
(api/dependencies.py): PostgreSQL through the API's own pool and Redis through its client, both
connected on first use (api/lazy.py). Without PostgreSQL the accounts, top-ups and failure
counts are in memory and the money reads answer 503. `install` puts the services built on the
stores into the app's state. Nothing else in api/ constructs an adapter; the routes read what
is here from `app.state`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from api.catalog_cache import CatalogPages
from api.dependencies import Dependency, Postgres, Redis, dependencies_from
from api.lazy import LazyPool, LazyRedis
from api.notification_hub import NotificationHub
from api.revocation import PostgresOverApiPool
from api.routes_accounts import access_issuer
from api.routes_bookings import PostgresBookings
from api.routes_catalog import LazyPostgresCatalog
from api.sales import SalesOverApiPool
from engine.accounts import AccountService
from engine.config import Settings
from engine.domain.accounts import ThrottlePolicy
from engine.domain.errors import StoreUnavailable
from engine.passwords import Argon2Parameters, Passwords
from engine.ports import (
    AccountStore,
    BookingsRepository,
    CatalogReader,
    FailureCounter,
    MoneyReads,
    NotificationStore,
    PaymentProvider,
    RevocationStore,
    SalesReadModel,
    TopupStore,
)


class _NoDatabase:
    """Money reads when the API has no PostgreSQL: every read is a 503."""

    async def statement(self, wallet_id: str, before_version: int, limit: int) -> list[Any]:
        raise StoreUnavailable("the API has no PostgreSQL dependency")

    async def pending_payments(self, customer_id: str) -> int:
        raise StoreUnavailable("the API has no PostgreSQL dependency")


def _memory_notifications() -> NotificationStore:
    from engine.adapters.memory_notifications import InMemoryNotifications

    return InMemoryNotifications()


@dataclass
class Stores:
    accounts: AccountStore
    failures: FailureCounter
    topups: TopupStore
    money_reads: MoneyReads
    notifications: NotificationStore = field(default_factory=_memory_notifications)
    provider: PaymentProvider | None = None  # None: the HTTP provider of REZERV_PROVIDER_URL


def default_stores(dependencies: Mapping[str, object]) -> Stores:
    from engine.adapters.memory_accounts import InMemoryAccounts, InMemoryFailures
    from engine.adapters.memory_topups import InMemoryTopups

    postgres, redis = dependencies.get("postgres"), dependencies.get("redis")
    if not isinstance(postgres, Postgres):
        return Stores(InMemoryAccounts(), InMemoryFailures(), InMemoryTopups(), _NoDatabase())
    from engine.adapters.pg_accounts import PostgresAccounts
    from engine.adapters.pg_money import PostgresMoneyReads
    from engine.adapters.pg_notifications import PostgresNotifications
    from engine.adapters.pg_topups import PostgresTopups
    from engine.adapters.redis_throttle import RedisFailures

    pool: Any = LazyPool(postgres.get_pool)
    failures = RedisFailures(LazyRedis(redis.get_client)) if isinstance(redis, Redis) else InMemoryFailures()
    return Stores(
        PostgresAccounts(pool), failures, PostgresTopups(pool), PostgresMoneyReads(pool), PostgresNotifications(pool)
    )


@dataclass
class ApiParts:
    """What one API process is built from: its dependencies and the adapters over them."""

    dependencies: list[Dependency]
    bookings: BookingsRepository
    revocations: RevocationStore | None  # None: no PostgreSQL, revoked tokens live in memory only
    sales: SalesReadModel
    catalog: CatalogReader
    catalog_pages: CatalogPages
    stores: Stores


def compose(
    settings: Settings,
    dependencies: list[Dependency] | None = None,
    bookings: BookingsRepository | None = None,
    revocations: RevocationStore | None = None,
    sales: SalesReadModel | None = None,
    catalog: CatalogReader | None = None,
    catalog_pages: CatalogPages | None = None,
    stores: Stores | None = None,
) -> ApiParts:
    """The parts given, and for every one not given the default over `dependencies` (by default
    those of `settings`: PostgreSQL, Redis, Kafka and Ray)."""
    deps = dependencies if dependencies is not None else dependencies_from(settings)
    named: dict[str, object] = {d.name: d for d in deps}
    postgres = next((d for d in deps if isinstance(d, Postgres)), None)
    redis = named.get("redis")
    if revocations is None and postgres is not None:
        revocations = PostgresOverApiPool(postgres.get_pool)
    return ApiParts(
        dependencies=deps,
        bookings=bookings if bookings is not None else PostgresBookings(postgres),
        revocations=revocations,
        sales=sales if sales is not None else SalesOverApiPool(postgres),
        catalog=catalog if catalog is not None else LazyPostgresCatalog(postgres),
        catalog_pages=catalog_pages or _cached_pages(settings, redis),
        stores=stores if stores is not None else default_stores(named),
    )


def _cached_pages(settings: Settings, redis: object) -> CatalogPages:
    """Catalog pages cached in the "redis" dependency's Redis, under the deployment's namespace;
    no cache without one."""
    if not isinstance(redis, Redis) or not redis.url:
        return CatalogPages(None, 0)
    from engine.adapters.redis_page_cache import RedisPageCache, catalog_prefix

    cache = RedisPageCache(redis.get_client(), catalog_prefix(settings.namespace))
    return CatalogPages(cache, settings.catalog_cache_ttl_s)


def install(app: FastAPI, settings: Settings, stores: Stores) -> None:
    passwords = Passwords(
        Argon2Parameters(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism),
        threads=settings.argon2_threads,
        niceness=settings.argon2_niceness,
    )

    async def revoke_access(tokens: Sequence[tuple[str, int]]) -> None:
        store = app.state.revocations
        for jti, until_ms in tokens:
            app.state.revoked_tokens.add(jti)
            if store is None:
                continue
            try:
                await store.revoke(jti, until_ms, "logged out or refresh token reused")
            except StoreUnavailable:
                raise
            except Exception as exc:  # pragma: no cover - a store bug must still end the session here
                raise StoreUnavailable(f"revoking {jti}: {exc}") from exc

    app.state.stores = stores
    app.state.topups = stores.topups
    app.state.money_reads = stores.money_reads
    app.state.notifications = stores.notifications
    app.state.notification_hub = NotificationHub(stores.notifications)
    if stores.provider is None:
        from engine.adapters.http_provider import HttpProvider

        stores.provider = HttpProvider(settings.provider_url, settings.provider_secret)
    app.state.provider = stores.provider
    app.state.passwords = passwords
    app.state.accounts = AccountService(
        stores.accounts,
        stores.failures,
        passwords,
        access_issuer(settings),
        revoke_access,
        ThrottlePolicy(
            settings.login_failures_per_account, settings.login_failures_per_address, settings.login_failure_window_s
        ),
        refresh_ttl_s=settings.refresh_token_ttl_s,
        min_password_length=settings.password_min_length,
        registrations_per_address=settings.registrations_per_address,
        clock=lambda: time.time_ns() // 1_000_000,
    )
