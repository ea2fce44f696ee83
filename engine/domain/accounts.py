"""Accounts, pure: what a login name and a password must be, when failed log-ins are throttled,
and what presenting a refresh token means. No hashing and no storage here (engine/accounts.py
wires these rules to the stores and the password hasher).

Login names are an email address or a username, compared in lower case. The customer id of an
account is not its login name but an id made at registration (`new_customer_id`): customers
existed before accounts (tokens from `rezerv token`, the demo's wallets), and a stranger who
registers the name "alice" must not get alice's wallet.

Passwords follow NIST SP 800-63B rather than composition rules: at least `min_length`
characters (10 by default), at most MAX_PASSWORD_LENGTH (argon2 hashes any length, but a
megabyte password is a way to burn CPU), not one of the most common passwords, not mostly one
character, and not the login name itself.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from engine.domain.errors import DomainError

MAX_PASSWORD_LENGTH = 128
MAX_LOGIN_LENGTH = 254
CUSTOMER = "customer"
ADMIN = "admin"
ROLES = (CUSTOMER, ADMIN)

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,31}$")
_EMAIL = re.compile(r"^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9-]{1,63})+$")

# The few passwords every guessing attack starts with (and that pass the length rule).
COMMON_PASSWORDS = frozenset(
    {
        "1234567890",
        "12345678910",
        "0123456789",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "qwertyuiop",
        "qwerty12345",
        "qwerty123456",
        "password12",
        "password123",
        "password1234",
        "passw0rd123",
        "iloveyou123",
        "letmein1234",
        "welcome123",
        "abcdefghij",
        "abc1234567",
        "administrator",
        "football123",
        "baseball123",
        "monkey12345",
        "dragon12345",
        "sunshine123",
        "princess123",
        "trustno1234",
        "changeme123",
        "zaq12wsxcde",
    }
)


class InvalidLogin(DomainError):
    code = "invalid-login"


class WeakPassword(DomainError):
    code = "weak-password"


def normalize_login(login: str) -> str:
    """The login name as stored and compared: trimmed, lower case. Raises InvalidLogin."""
    if not isinstance(login, str):
        raise InvalidLogin("a login is an email address or a username")
    name = login.strip().lower()
    if len(name) > MAX_LOGIN_LENGTH or not (_USERNAME.fullmatch(name) or _EMAIL.fullmatch(name)):
        raise InvalidLogin(
            "a login is an email address, or a username of 3 to 32 letters, digits, '.', '_' or '-' "
            "starting with a letter or digit"
        )
    return name


def password_problems(password: str, login: str, min_length: int = 10) -> list[str]:
    """Why `password` is too weak for `login` (already normalized); empty when it is fine."""
    if not isinstance(password, str):
        return ["a password is a string"]
    problems = []
    if len(password) < min_length:
        problems.append(f"it has {len(password)} characters; at least {min_length} are needed")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"it has more than {MAX_PASSWORD_LENGTH} characters")
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS:
        problems.append("it is one of the most common passwords")
    if len(set(password)) < 5:
        problems.append("it uses fewer than 5 different characters")
    local = login.split("@", 1)[0]
    if len(local) >= 3 and local in lowered:
        problems.append("it contains the login name")
    return problems


def check_password(password: str, login: str, min_length: int = 10) -> None:
    problems = password_problems(password, login, min_length)
    if problems:
        raise WeakPassword("the password is too weak: " + "; ".join(problems))


def new_customer_id() -> str:
    """A customer id for a new account: valid in every id field (api/schemas.py), never guessable
    from the login name, and never one of the ids customers had before accounts."""
    return "u-" + secrets.token_hex(10)


# ---- throttling failed log-ins ---------------------------------------------------------------
@dataclass(frozen=True)
class ThrottlePolicy:
    """At most `per_account` failed log-ins for one login name and `per_address` from one client
    address within `window_s`; past either, every attempt is refused, before its password is
    checked, until the window of the failures ends. A success clears the account's count, not
    the address's (an address guessing many accounts stays throttled)."""

    per_account: int = 5
    per_address: int = 20
    window_s: float = 900.0

    def retry_after(self, account: tuple[int, float], address: tuple[int, float]) -> float | None:
        """Seconds until an attempt may be made, given (failures, seconds left in their window)
        for the account and the address; None when one may be made now."""
        waits = [
            left
            for (count, left), limit in ((account, self.per_account), (address, self.per_address))
            if count >= limit
        ]
        return max(*waits, 1.0) if waits else None


def account_key(login: str) -> str:
    return f"login:{login}"


def address_key(address: str) -> str:
    return f"address:{address}"


# ---- refresh tokens ---------------------------------------------------------------------------
ROTATED = "rotated"  # the token was current: it is used up now, and a new one of its family issued
REUSED = "reused"  # the token had been rotated before: someone holds an old copy; its family is revoked
EXPIRED = "expired"
REVOKED = "revoked"  # logged out, or its family revoked after a reuse
UNKNOWN = "unknown"


def presented(known: bool, used: bool, revoked: bool, expires_at_ms: int, now_ms: int) -> str:
    """What presenting a stored refresh token means (one of the outcomes above).

    A revoked token stays revoked (refusing it again revokes nothing new); a used one means a
    copy was kept by someone, the client or a thief, and the only safe answer is to end the whole
    family, which logs the client out everywhere that family reached."""
    if not known:
        return UNKNOWN
    if revoked:
        return REVOKED
    if used:
        return REUSED
    if expires_at_ms <= now_ms:
        return EXPIRED
    return ROTATED
