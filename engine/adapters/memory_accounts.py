"""In-memory accounts, refresh tokens and failure counters, for unit tests; they pass the same
contract suites as the PostgreSQL and Redis adapters (tests/contract/accounts.py, throttle.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from engine.accounts import Account, RefreshToken, UseResult
from engine.domain.accounts import REUSED, ROTATED, UNKNOWN, presented


@dataclass
class _Stored:
    token: RefreshToken
    used: bool = False
    revoked: bool = False


@dataclass
class InMemoryAccounts:
    accounts: dict[str, Account] = field(default_factory=dict)  # by login
    tokens: dict[str, _Stored] = field(default_factory=dict)

    async def create(self, account: Account) -> bool:
        if account.login in self.accounts or any(a.account_id == account.account_id for a in self.accounts.values()):
            return False
        self.accounts[account.login] = account
        return True

    async def by_login(self, login: str) -> Account | None:
        return self.accounts.get(login)

    async def set_password_hash(self, account_id: str, password_hash: str) -> None:
        for login, account in self.accounts.items():
            if account.account_id == account_id:
                self.accounts[login] = replace(account, password_hash=password_hash)

    async def add_refresh(self, token: RefreshToken) -> None:
        self.tokens[token.token_hash] = _Stored(token)

    def _family(self, family_id: str) -> list[_Stored]:
        return [s for s in self.tokens.values() if s.token.family_id == family_id]

    async def use_refresh(self, token_hash: str, now_ms: int) -> UseResult:
        stored = self.tokens.get(token_hash)
        if stored is None:
            return UseResult(UNKNOWN)
        outcome = presented(True, stored.used, stored.revoked, stored.token.expires_at_ms, now_ms)
        if outcome == REUSED:
            return UseResult(REUSED, revoked_access=self._revoke(stored.token.family_id, now_ms))
        if outcome != ROTATED:
            return UseResult(outcome)
        stored.used = True
        account = next(a for a in self.accounts.values() if a.account_id == stored.token.account_id)
        return UseResult(ROTATED, account, stored.token.family_id, stored.token.expires_at_ms)

    def _revoke(self, family_id: str, now_ms: int) -> tuple[tuple[str, int], ...]:
        out = []
        for s in self._family(family_id):
            if not s.revoked and s.token.access_expires_at_ms > now_ms:
                out.append((s.token.access_jti, s.token.access_expires_at_ms))
            s.revoked = True
        return tuple(sorted(out))

    async def revoke_family(self, token_hash: str, now_ms: int) -> tuple[tuple[str, int], ...]:
        stored = self.tokens.get(token_hash)
        return () if stored is None else self._revoke(stored.token.family_id, now_ms)


@dataclass
class InMemoryFailures:
    clock: Callable[[], float] = time.monotonic
    windows: dict[str, tuple[int, float]] = field(default_factory=dict)  # key -> (count, window end)

    async def counts(self, keys: Sequence[str]) -> list[tuple[int, float]]:
        now = self.clock()
        out = []
        for key in keys:
            count, end = self.windows.get(key, (0, 0.0))
            out.append((count, end - now) if end > now else (0, 0.0))
        return out

    async def add(self, keys: Sequence[str], window_s: float) -> None:
        now = self.clock()
        for key in keys:
            count, end = self.windows.get(key, (0, 0.0))
            self.windows[key] = (count + 1, end) if end > now else (1, now + window_s)

    async def clear(self, key: str) -> None:
        self.windows.pop(key, None)
