"""Accounts: register, log in, refresh, log out; the records its ports pass and the service that uses them.

The ports (`AccountStore`, `FailureCounter`) are in engine/ports.py with every other one.

The service is the only place these rules are wired together, tested against in-memory fakes
(tests/unit/test_accounts.py); the stores are adapters (engine/adapters/pg_accounts.py for
accounts and refresh tokens, engine/adapters/redis_throttle.py for failed log-ins), each held to
a contract suite with its fake (tests/contract/).

Sessions: a log-in gives a short-lived access token (a JWT the API checks without any lookup,
REZERV_ACCESS_TOKEN_TTL_S, 15 minutes by default) and a refresh token (random, 256 bits, stored
only as its SHA-256: a high-entropy secret needs no slow hash) that lives at most
REZERV_REFRESH_TOKEN_TTL_S. Each refresh uses its token up and returns a new one of the same
family (rotation). A refresh token presented a second time means a copy exists somewhere: the
whole family is revoked, and so are the access tokens issued with it (their ids go into the
revoked tokens every API worker checks), so the thief and the client are both logged out and the
client logs in again. Logging out revokes the family and the access token of the request.

Failed log-ins are counted per login name and per client address (engine/domain/accounts.py
ThrottlePolicy); past the limit an attempt is refused before its password is checked, so a
guessing attack costs the server no hashing either.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from engine.domain.accounts import (
    CUSTOMER,
    REUSED,
    ROTATED,
    ThrottlePolicy,
    account_key,
    address_key,
    check_password,
    new_customer_id,
    normalize_login,
)
from engine.domain.errors import DomainError
from engine.passwords import Passwords
from engine.ports import AccountStore, FailureCounter

REGISTRATIONS_PER_ADDRESS = "register:"


@dataclass(frozen=True)
class Account:
    account_id: str  # the customer id: the subject of its access tokens
    login: str
    password_hash: str
    role: str = CUSTOMER
    created_at_ms: int = 0


@dataclass(frozen=True)
class RefreshToken:
    """A stored refresh token (its hash only) and the access token issued with it."""

    token_hash: str
    family_id: str
    account_id: str
    expires_at_ms: int
    access_jti: str
    access_expires_at_ms: int


@dataclass(frozen=True)
class UseResult:
    outcome: str  # engine.domain.accounts: ROTATED, REUSED, EXPIRED, REVOKED or UNKNOWN
    account: Account | None = None
    family_id: str = ""
    family_expires_at_ms: int = 0
    revoked_access: tuple[tuple[str, int], ...] = ()  # (jti, expiry) of access tokens to refuse from now


@dataclass(frozen=True)
class AccessToken:
    token: str
    jti: str
    expires_at_ms: int


IssueAccess = Callable[[Account], AccessToken]
RevokeAccess = Callable[[Sequence[tuple[str, int]]], Awaitable[None]]


@dataclass(frozen=True)
class Session:
    account: Account
    access: AccessToken
    refresh_token: str
    refresh_expires_at_ms: int


class LoginTaken(DomainError):
    code = "login-taken"


class InvalidCredentials(DomainError):
    code = "invalid-credentials"


class RefreshRefused(DomainError):
    """The refresh token cannot be used; `code` says why (reused, expired, revoked, invalid)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(
            {
                REUSED: "This refresh token was used before; its sessions are ended. Log in again.",
            }.get(outcome, f"The refresh token is {outcome}. Log in again.")
        )
        self.code = f"refresh-token-{'invalid' if outcome == 'unknown' else outcome}"  # type: ignore[misc]


class Throttled(DomainError):
    code = "too-many-attempts"

    def __init__(self, message: str = "", retry_after_s: float = 1.0) -> None:
        super().__init__(message or "Too many attempts; try again later.")
        self.retry_after_s = retry_after_s

    @classmethod
    def after(cls, retry_after_s: float, what: str = "failed log-ins") -> Throttled:
        return cls(f"Too many {what}; try again in {int(retry_after_s + 0.999)} seconds.", retry_after_s)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class AccountService:
    store: AccountStore
    failures: FailureCounter
    passwords: Passwords
    issue_access: IssueAccess
    revoke_access: RevokeAccess
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    refresh_ttl_s: float = 30 * 86400.0
    min_password_length: int = 10
    registrations_per_address: int = 20  # within the throttle's window
    clock: Callable[[], int] = _now_ms

    async def register(self, login: str, password: str, address: str) -> Account:
        """A new customer account. Raises InvalidLogin, WeakPassword, LoginTaken or Throttled
        (too many registrations from one address: each costs a hash)."""
        name = normalize_login(login)
        check_password(password, name, self.min_password_length)
        key = REGISTRATIONS_PER_ADDRESS + address
        [(count, left)] = await self.failures.counts([key])
        if count >= self.registrations_per_address:
            raise Throttled.after(max(left, 1.0), "registrations from this address")
        await self.failures.add([key], self.throttle.window_s)
        account = Account(new_customer_id(), name, await self.passwords.hash(password), CUSTOMER, self.clock())
        if not await self.store.create(account):
            raise LoginTaken(f"the login {name} is taken")
        return account

    async def create_admin(self, login: str, password: str) -> Account:
        """An admin account (the `rezerv admin create` command; never a route)."""
        name = normalize_login(login)
        check_password(password, name, self.min_password_length)
        account = Account("admin-" + secrets.token_hex(6), name, await self.passwords.hash(password), "admin")
        if not await self.store.create(account):
            raise LoginTaken(f"the login {name} is taken")
        return account

    async def login(self, login: str, password: str, address: str) -> Session:
        """A session for the right password. Raises InvalidCredentials (wrong password, unknown
        login, or a login that is not one: the same answer for all) or Throttled."""
        try:
            name = normalize_login(login)
        except DomainError:
            name = ""
        keys = [account_key(name), address_key(address)]
        account_count, address_count = await self.failures.counts(keys)
        wait = self.throttle.retry_after(account_count, address_count)
        if wait is not None:
            raise Throttled.after(wait)
        account = await self.store.by_login(name) if name else None
        if not await self.passwords.verify(account.password_hash if account else None, password) or account is None:
            await self.failures.add(keys, self.throttle.window_s)
            raise InvalidCredentials("The login or the password is wrong.")
        await self.failures.clear(keys[0])
        if self.passwords.needs_rehash(account.password_hash):
            await self.store.set_password_hash(account.account_id, await self.passwords.hash(password))
        return await self._start(account, secrets.token_hex(16), self.clock() + int(self.refresh_ttl_s * 1000))

    async def _start(self, account: Account, family: str, family_expires_at_ms: int) -> Session:
        access = self.issue_access(account)
        token = secrets.token_urlsafe(32)
        stored = RefreshToken(
            hash_token(token), family, account.account_id, family_expires_at_ms, access.jti, access.expires_at_ms
        )
        await self.store.add_refresh(stored)
        return Session(account, access, token, family_expires_at_ms)

    async def refresh(self, refresh_token: str) -> Session:
        """A new session for a current refresh token (which is used up). Raises RefreshRefused."""
        if not isinstance(refresh_token, str) or not refresh_token:
            raise RefreshRefused("unknown")
        used = await self.store.use_refresh(hash_token(refresh_token), self.clock())
        if used.outcome == REUSED and used.revoked_access:
            await self.revoke_access(used.revoked_access)
        if used.outcome != ROTATED or used.account is None:
            raise RefreshRefused(used.outcome)
        # Not atomic with the use: a crash in between leaves the family without a current token,
        # and the client logs in again. Nothing is ever usable twice.
        return await self._start(used.account, used.family_id, used.family_expires_at_ms)

    async def logout(self, refresh_token: str | None, access: tuple[str, int] | None) -> None:
        """End the refresh token's family and the access token `access` (jti, expiry), as given."""
        revoked: list[tuple[str, int]] = [access] if access else []
        if refresh_token:
            revoked += await self.store.revoke_family(hash_token(refresh_token), self.clock())
        if revoked:
            await self.revoke_access(revoked)
