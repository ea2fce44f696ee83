"""The stores behind accounts, money and notifications, for one API process.

`create_app(stores=...)` takes them (the unit tests pass in-memory ones); by default they are
the PostgreSQL and Redis adapters over the API's own pool and client, connected on first use
(api/lazy.py). `install` puts the services built on them into the app's state.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from api.dependencies import Postgres, Redis
from api.lazy import LazyPool, LazyRedis
from api.routes_accounts import access_issuer
from engine.accounts import AccountService, AccountStore, FailureCounter
from engine.config import Settings
from engine.domain.accounts import ThrottlePolicy
from engine.domain.errors import StoreUnavailable
from engine.passwords import Argon2Parameters, Passwords


@dataclass
class Stores:
    accounts: AccountStore
    failures: FailureCounter
    pool: Any = None  # PostgreSQL (or a LazyPool over it) for the read models; None: no database


def default_stores(dependencies: Mapping[str, object]) -> Stores:
    from engine.adapters.pg_accounts import PostgresAccounts
    from engine.adapters.redis_throttle import RedisFailures

    postgres, redis = dependencies.get("postgres"), dependencies.get("redis")
    pool = LazyPool(postgres.get_pool) if isinstance(postgres, Postgres) else None
    failures = RedisFailures(LazyRedis(redis.get_client)) if isinstance(redis, Redis) else None
    if pool is None or failures is None:
        from engine.adapters.memory_accounts import InMemoryAccounts, InMemoryFailures

        return Stores(InMemoryAccounts(), InMemoryFailures(), pool)
    return Stores(PostgresAccounts(pool), failures, pool)  # type: ignore[arg-type]


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
