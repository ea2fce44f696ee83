"""Accounts: login names, password rules, argon2id parameters and where hashing runs, throttled
failed log-ins, refresh rotation with reuse detection, logout; the service on in-memory fakes
(which pass the same contract suites as PostgreSQL and Redis)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import pytest

from engine.accounts import (
    AccessToken,
    Account,
    AccountService,
    InvalidCredentials,
    LoginTaken,
    RefreshRefused,
    Throttled,
)
from engine.adapters.memory_accounts import InMemoryAccounts, InMemoryFailures
from engine.domain.accounts import InvalidLogin, ThrottlePolicy, WeakPassword, normalize_login, password_problems
from engine.passwords import Argon2Parameters, Passwords
from tests.contract.accounts import AccountStoreContract, FailureCounterContract
from tests.loop_passes import counting_loop_turns

FAST = Argon2Parameters(time_cost=1, memory_kib=64, parallelism=1)
GOOD = "correct horse battery"


class TestInMemoryAccounts(AccountStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryAccounts:
        return InMemoryAccounts()


class TestInMemoryFailures(FailureCounterContract):
    @pytest.fixture
    def failures(self) -> InMemoryFailures:
        return InMemoryFailures()


# ---- login names and passwords ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "stored"),
    [("Alice", "alice"), (" bob.smith ", "bob.smith"), ("Ann@Example.COM", "ann@example.com"), ("x_9-y", "x_9-y")],
)
def test_a_login_is_an_email_or_a_username_compared_in_lower_case(given: str, stored: str) -> None:
    assert normalize_login(given) == stored


@pytest.mark.parametrize("bad", ["", "ab", "-dash-first", "has space", "a" * 33, "no@tld", "@example.com", "é@x.io"])
def test_anything_else_is_not_a_login(bad: str) -> None:
    with pytest.raises(InvalidLogin):
        normalize_login(bad)


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short1!", "at least 10"),
        ("password123", "most common"),
        ("aaaaaaaaaaaaaaa", "fewer than 5 different"),
        ("my-alice-secret-1", "contains the login"),
        ("x" * 100 + "abcdefghijklmnopqrstuvwxyz" * 2, "more than 128"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, why: str) -> None:
    problems = password_problems(password, "alice")
    assert any(why in p for p in problems), problems


def test_a_long_varied_password_passes() -> None:
    assert password_problems(GOOD, "alice") == []
    assert password_problems("Tr0ub4dor&3x", "bob@example.com") == []


# ---- hashing -----------------------------------------------------------------------------------
async def test_passwords_are_hashed_with_argon2id_and_the_configured_parameters() -> None:
    passwords = Passwords(Argon2Parameters(time_cost=2, memory_kib=19_456, parallelism=1))
    stored = await passwords.hash(GOOD)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert GOOD not in stored
    assert await passwords.verify(stored, GOOD)
    assert not await passwords.verify(stored, GOOD + "!")
    assert not await passwords.verify(None, GOOD), "an unknown account checks a dummy hash"
    assert Passwords(FAST).needs_rehash(stored), "other parameters: rehash at the next log-in"
    passwords.close()


async def test_hashing_runs_off_the_event_loop_in_threads_of_lower_priority() -> None:
    passwords = Passwords(Argon2Parameters(time_cost=3, memory_kib=32_768), threads=1, niceness=7)
    async with counting_loop_turns(0.001) as turns:
        await passwords.hash(GOOD)
    assert turns() >= 5, "the loop kept running while the hash was computed"
    pool = passwords._executor()
    seen = pool.submit(lambda: (threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    tid, nice = seen.result()
    assert tid != threading.get_native_id()
    assert nice == max(7, os.getpriority(os.PRIO_PROCESS, 0))
    passwords.close()


# ---- the service ---------------------------------------------------------------------------------
class CountingPasswords(Passwords):
    def __init__(self) -> None:
        super().__init__(FAST)
        self.checks = 0

    async def verify(self, stored: str | None, password: str) -> bool:
        self.checks += 1
        return await super().verify(stored, password)


class Harness:
    def __init__(self) -> None:
        self.store = InMemoryAccounts()
        self.failures = InMemoryFailures()
        self.passwords = CountingPasswords()
        self.revoked: list[tuple[str, int]] = []
        self.issued = 0
        self.service = AccountService(
            self.store,
            self.failures,
            self.passwords,
            self.issue,
            self.revoke,
            ThrottlePolicy(per_account=3, per_address=5, window_s=60),
            refresh_ttl_s=3600,
            registrations_per_address=4,
        )

    def issue(self, account: Account) -> AccessToken:
        self.issued += 1
        return AccessToken(f"jwt-{self.issued}", f"jti-{self.issued}", 1_800_000_900_000)

    async def revoke(self, tokens: Sequence[tuple[str, int]]) -> None:
        self.revoked += tokens


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_registering_makes_a_customer_with_an_id_of_its_own(h: Harness) -> None:
    account = await h.service.register("Alice@Example.com", GOOD, "10.0.0.1")
    assert account.login == "alice@example.com"
    assert account.role == "customer"
    assert account.account_id.startswith("u-")
    assert account.account_id != "alice"
    assert account.password_hash.startswith("$argon2id$")
    with pytest.raises(LoginTaken):
        await h.service.register("ALICE@example.com", GOOD, "10.0.0.2")
    with pytest.raises(WeakPassword):
        await h.service.register("bob", "password123", "10.0.0.1")


async def test_registrations_from_one_address_are_limited(h: Harness) -> None:
    for i in range(4):
        await h.service.register(f"user{i}", GOOD, "10.0.0.9")
    with pytest.raises(Throttled):
        await h.service.register("user9", GOOD, "10.0.0.9")
    await h.service.register("user9", GOOD, "10.0.0.10")


async def test_a_login_gives_an_access_token_and_a_refresh_token(h: Harness) -> None:
    account = await h.service.register("alice", GOOD, "a")
    session = await h.service.login(" ALICE ", GOOD, "a")
    assert session.account == account
    assert session.access.token == "jwt-1"
    assert len(session.refresh_token) >= 40
    assert session.refresh_token not in str(h.store.tokens), "stored only as its hash"


async def test_wrong_passwords_unknown_logins_and_non_logins_get_the_same_answer(h: Harness) -> None:
    await h.service.register("alice", GOOD, "a")
    for login, password in (("alice", "wrong password!"), ("nobody", GOOD), ("not a login", GOOD)):
        with pytest.raises(InvalidCredentials, match="The login or the password is wrong"):
            await h.service.login(login, password, f"addr-{login}")
    assert h.passwords.checks == 3, "a password is checked (or a dummy) every time"


async def test_failed_logins_are_throttled_per_account_before_the_password_is_checked(h: Harness) -> None:
    await h.service.register("alice", GOOD, "a")
    for i in range(3):
        with pytest.raises(InvalidCredentials):
            await h.service.login("alice", "wrong password!", f"addr-{i}")
    checks = h.passwords.checks
    with pytest.raises(Throttled) as refused:
        await h.service.login("alice", GOOD, "addr-new")
    assert 0 < refused.value.retry_after_s <= 60
    assert h.passwords.checks == checks, "a throttled attempt costs no hashing"


async def test_failed_logins_are_throttled_per_address_and_a_success_clears_only_the_account(h: Harness) -> None:
    await h.service.register("alice", GOOD, "a")
    await h.service.register("bob", GOOD, "a")
    with pytest.raises(InvalidCredentials):
        await h.service.login("alice", "wrong password!", "x")
    with pytest.raises(InvalidCredentials):
        await h.service.login("alice", "wrong password!", "x")
    await h.service.login("alice", GOOD, "x")
    assert (await h.failures.counts(["login:alice"]))[0][0] == 0, "cleared by the success"
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            await h.service.login("bob", "wrong password!", "x")
    with pytest.raises(InvalidCredentials):
        await h.service.login("nobody", "wrong password!", "x")
    with pytest.raises(Throttled):  # five failures from "x", whatever the accounts
        await h.service.login("bob", GOOD, "x")
    await h.service.login("bob", GOOD, "elsewhere")


async def test_a_refresh_rotates_the_token_and_a_reused_one_ends_the_family_and_its_access_tokens(h: Harness) -> None:
    await h.service.register("alice", GOOD, "a")
    first = await h.service.login("alice", GOOD, "a")
    second = await h.service.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.refresh_expires_at_ms == first.refresh_expires_at_ms, "a family lives no longer than its log-in"
    third = await h.service.refresh(second.refresh_token)
    elsewhere = await h.service.login("alice", GOOD, "b")

    with pytest.raises(RefreshRefused) as reused:
        await h.service.refresh(first.refresh_token)
    assert reused.value.code == "refresh-token-reused"
    assert sorted(jti for jti, _ in h.revoked) == ["jti-1", "jti-2", "jti-3"]
    with pytest.raises(RefreshRefused) as after:
        await h.service.refresh(third.refresh_token)
    assert after.value.code == "refresh-token-revoked"
    await h.service.refresh(elsewhere.refresh_token)  # another log-in's family is untouched


async def test_logout_ends_the_family_and_the_access_token_of_the_request(h: Harness) -> None:
    await h.service.register("alice", GOOD, "a")
    session = await h.service.login("alice", GOOD, "a")
    await h.service.logout(session.refresh_token, ("jti-current", 1_800_000_900_000))
    assert sorted(jti for jti, _ in h.revoked) == ["jti-1", "jti-current"]
    with pytest.raises(RefreshRefused):
        await h.service.refresh(session.refresh_token)
    with pytest.raises(RefreshRefused) as garbage:
        await h.service.refresh("not-a-token")
    assert garbage.value.code == "refresh-token-invalid"


async def test_admins_are_made_by_the_service_not_by_registering(h: Harness) -> None:
    admin = await h.service.create_admin("root", GOOD)
    assert admin.role == "admin"
    assert (await h.service.login("root", GOOD, "a")).account.role == "admin"


async def test_a_hash_made_with_older_parameters_is_replaced_at_the_next_login(h: Harness) -> None:
    older = Passwords(Argon2Parameters(time_cost=2, memory_kib=128, parallelism=1))
    await h.store.create(Account("u-old", "old", await older.hash(GOOD)))
    await h.service.login("old", GOOD, "a")
    rehashed = (await h.store.by_login("old")).password_hash  # type: ignore[union-attr]
    assert rehashed.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    await h.service.login("old", GOOD, "a")
