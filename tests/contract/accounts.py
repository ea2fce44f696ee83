"""The AccountStore and FailureCounter contracts (engine/ports.py): one suite each, run against
the in-memory fakes (tests/unit) and PostgreSQL / Redis (tests/integration). A subclass
provides the `store` (or `failures`) fixture."""

from __future__ import annotations

import asyncio
import uuid

from engine.accounts import Account, RefreshToken
from engine.domain.accounts import EXPIRED, REUSED, REVOKED, ROTATED, UNKNOWN
from engine.ports import AccountStore, FailureCounter

NOW = 1_800_000_000_000


def an_account(login: str | None = None) -> Account:
    login = login or f"user-{uuid.uuid4().hex[:8]}"
    return Account(f"u-{uuid.uuid4().hex[:12]}", login, "$argon2id$stand-in", "customer", NOW)


def a_token(account: Account, family: str, jti: str, expires: int = NOW + 60_000) -> RefreshToken:
    return RefreshToken(uuid.uuid4().hex, family, account.account_id, expires, jti, NOW + 900_000)


class AccountStoreContract:
    async def test_a_login_is_taken_once(self, store: AccountStore) -> None:
        account = an_account()
        assert await store.create(account)
        assert not await store.create(an_account(account.login)), "the same login"
        assert await store.by_login(account.login) == account
        assert await store.by_login("nobody-here") is None
        await store.set_password_hash(account.account_id, "$argon2id$rehashed")
        assert (await store.by_login(account.login)).password_hash == "$argon2id$rehashed"  # type: ignore[union-attr]

    async def test_a_current_token_rotates_once_and_a_second_use_revokes_its_family(self, store: AccountStore) -> None:
        account = an_account()
        await store.create(account)
        first = a_token(account, "fam", "jti-1")
        await store.add_refresh(first)
        used = await store.use_refresh(first.token_hash, NOW)
        assert (used.outcome, used.account, used.family_id, used.family_expires_at_ms) == (
            ROTATED,
            account,
            "fam",
            first.expires_at_ms,
        )
        second = a_token(account, "fam", "jti-2")
        await store.add_refresh(second)
        other = a_token(account, "other-fam", "jti-3")
        await store.add_refresh(other)

        reused = await store.use_refresh(first.token_hash, NOW + 1)
        assert reused.outcome == REUSED
        assert sorted(reused.revoked_access) == [("jti-1", NOW + 900_000), ("jti-2", NOW + 900_000)]
        assert (await store.use_refresh(second.token_hash, NOW + 2)).outcome == REVOKED, "the family is over"
        assert (await store.use_refresh(first.token_hash, NOW + 3)).revoked_access == (), "revoked once"
        assert (await store.use_refresh(other.token_hash, NOW + 4)).outcome == ROTATED, "other families live on"

    async def test_expired_unknown_and_logged_out_tokens_are_refused(self, store: AccountStore) -> None:
        account = an_account()
        await store.create(account)
        old = a_token(account, "f1", "j1", expires=NOW)
        await store.add_refresh(old)
        assert (await store.use_refresh(old.token_hash, NOW)).outcome == EXPIRED
        assert (await store.use_refresh("no-such-hash", NOW)).outcome == UNKNOWN
        live = a_token(account, "f2", "j2")
        await store.add_refresh(live)
        assert await store.revoke_family(live.token_hash, NOW) == (("j2", NOW + 900_000),)
        assert (await store.use_refresh(live.token_hash, NOW)).outcome == REVOKED
        assert await store.revoke_family("no-such-hash", NOW) == ()

    async def test_two_presentations_at_once_rotate_it_once(self, store: AccountStore) -> None:
        account = an_account()
        await store.create(account)
        token = a_token(account, "race", "j")
        await store.add_refresh(token)
        outcomes = await asyncio.gather(*(store.use_refresh(token.token_hash, NOW) for _ in range(4)))
        assert sorted(o.outcome for o in outcomes).count(ROTATED) == 1


class FailureCounterContract:
    async def test_failures_count_up_within_their_window_and_clear(self, failures: FailureCounter) -> None:
        a, b = f"login:{uuid.uuid4().hex}", f"address:{uuid.uuid4().hex}"
        assert await failures.counts([a, b]) == [(0, 0.0), (0, 0.0)]
        await failures.add([a, b], 60)
        await failures.add([a], 60)
        (count_a, left_a), (count_b, left_b) = await failures.counts([a, b])
        assert (count_a, count_b) == (2, 1)
        assert 0 < left_a <= 60
        assert 0 < left_b <= 60
        await failures.clear(a)
        assert (await failures.counts([a]))[0][0] == 0
        assert (await failures.counts([b]))[0][0] == 1

    async def test_a_window_ends_and_its_failures_are_forgotten(self, failures: FailureCounter) -> None:
        key = f"login:{uuid.uuid4().hex}"
        await failures.add([key], 0.2)
        assert (await failures.counts([key]))[0][0] == 1
        await asyncio.sleep(0.35)
        assert await failures.counts([key]) == [(0, 0.0)]
