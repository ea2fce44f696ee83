"""`rezerv admin create LOGIN`: the only way to make an administrator account.

No route of the API can create one: a public registration always makes a customer. The command
runs where the database is reachable (REZERV_DATABASE_URL, or the data directory of a local
`rezerv up`), asks for the password twice (or reads it from standard input), checks it against
the same rules as a registration and stores its argon2id hash.
"""

from __future__ import annotations

import asyncio
import getpass
import sys

from engine.config import Settings


def _password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        print("rezerv admin: the passwords differ", file=sys.stderr)
        return None
    return first


def create_admin(login: str, password_stdin: bool) -> int:
    from engine.accounts import AccountService
    from engine.adapters.memory_accounts import InMemoryFailures
    from engine.adapters.pg_accounts import PostgresAccounts
    from engine.adapters.pg_pool import create_pool
    from engine.domain.errors import DomainError, StoreUnavailable
    from engine.passwords import Argon2Parameters, Passwords
    from stack.up import embedded_database_url

    settings = Settings.from_env()
    url = embedded_database_url(settings)
    if not url:
        print("rezerv admin: set REZERV_DATABASE_URL or run it where `rezerv up` keeps its data", file=sys.stderr)
        return 2
    password = _password(password_stdin)
    if password is None:
        return 2

    async def create() -> str:
        pool = await create_pool(url, 1)
        passwords = Passwords(
            Argon2Parameters(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
        )
        try:
            service = AccountService(
                PostgresAccounts(pool),
                InMemoryFailures(),
                passwords,
                lambda _account: None,  # type: ignore[arg-type,return-value]
                lambda _tokens: asyncio.sleep(0),
                min_password_length=settings.password_min_length,
            )
            return (await service.create_admin(login, password)).account_id
        finally:
            passwords.close()
            await pool.close()

    try:
        account_id = asyncio.run(create())
    except DomainError as exc:
        print(f"rezerv admin: {exc.message}", file=sys.stderr)
        return 1
    except (StoreUnavailable, OSError) as exc:
        print(f"rezerv admin: the database did not answer ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    print(f"created admin {login.strip().lower()} ({account_id}); log in with POST /auth/login")
    return 0
