"""JWT bearer authentication (HS256): the token's subject is the customer, its roles grant admin.

Tokens are issued by `rezerv token` (and printed by `rezerv up` for the admin). A customer may
act only for itself; an admin may act for anyone and manage inventory.

A token is accepted only if its signature, audience and expiry check out, its lifetime
(`exp - iat`) is within REZERV_TOKEN_MAX_TTL_S, and its id (`jti`) is not revoked
(api/revocation.py). A refused token gets a 401 problem with a stable `code` and a plain
sentence; why PyJWT refused it goes to the log, never to the client.

Verifying a token (HMAC, base64, JSON, claims) costs PyJWT about 50 us, which was 10-17% of the
API process under load, and a customer sends the same token with every request. So a verified
token is kept in a bounded cache (`TokenVerifier`), keyed by the token string itself: a hit
still checks the expiry against the clock and the revocation set (a set lookup), so a cached
token stops working the moment it expires or is revoked, and a token that was never verified is
never in the cache. The cache is per process and forgets its oldest entries first when full.

The edge (api/edge.py) verifies the token of every protected request before its body is read
and leaves the principal in the ASGI scope; the `current_principal` dependency takes it from
there, so a request is verified once.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiProblem
from engine.config import Settings

if TYPE_CHECKING:
    from api.revocation import RevokedTokens

ALGORITHM = "HS256"
SCOPE_PRINCIPAL = "rezerv.principal"  # where the edge leaves the verified principal in the scope's state
CACHE_SIZE = 100_000  # verified tokens kept per process (~300 bytes each)
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}
log = logging.getLogger("rezerv.api.auth")


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]
    token_id: str = ""  # the token's `jti`: what a revocation names
    expires_at: float = 0.0  # the token's `exp`, Unix seconds

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def may_act_for(self, customer_id: str) -> bool:
        return self.is_admin or self.subject == customer_id


class Unauthorized(Exception):
    """No usable token: answered 401 with `WWW-Authenticate: Bearer`, a stable `code` and a plain
    sentence (`reason`), never a library's message."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def problem(self) -> ApiProblem:
        return ApiProblem(401, self.code, "Unauthorized", self.reason, headers=UNAUTHORIZED_HEADERS)


TOKEN_REQUIRED = ("token-required", "A bearer token is required.")
TOKEN_INVALID = ("token-invalid", "The token is not valid.")
TOKEN_EXPIRED = ("token-expired", "The token has expired; ask for a new one.")
TOKEN_TOO_LONG = ("token-lifetime-too-long", "The token lives longer than this server allows; ask for a new one.")
TOKEN_REVOKED = ("token-revoked", "The token has been revoked; ask for a new one.")
NO_SECRET = ("no-secret", "This server has no token secret configured; no token can be accepted.")


class TokenTooLongLived(jwt.InvalidTokenError):
    """`exp - iat` is above REZERV_TOKEN_MAX_TTL_S."""


def issue_token(settings: Settings, subject: str, roles: tuple[str, ...] = ("customer",), ttl_s: int = 3600) -> str:
    return issue_token_with_id(settings, subject, roles, ttl_s)[0]


def issue_token_with_id(
    settings: Settings, subject: str, roles: tuple[str, ...] = ("customer",), ttl_s: int = 3600
) -> tuple[str, str, int]:
    """(token, its id `jti`, its expiry in epoch seconds): what a log-in must remember to revoke it."""
    if not settings.jwt_secret:
        raise ValueError("REZERV_JWT_SECRET is not set")
    if ttl_s > settings.token_max_ttl_s:
        raise ValueError(
            f"a token may live at most {settings.token_max_ttl_s:.0f} s (REZERV_TOKEN_MAX_TTL_S), not {ttl_s} s"
        )
    now = int(time.time())
    jti = uuid.uuid4().hex
    claims = {
        "sub": subject,
        "roles": list(roles),
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_s,
        "jti": jti,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM), jti, now + ttl_s


def decode_token(settings: Settings, token: str) -> Principal:
    """The token's principal; raises jwt.InvalidTokenError (ExpiredSignatureError when expired,
    TokenTooLongLived past the lifetime cap). Revocation is the verifier's check."""
    claims = jwt.decode(
        token,
        settings.jwt_secret,
        algorithms=[ALGORITHM],
        audience=settings.jwt_audience,
        options={"require": ["sub", "exp", "iat", "aud", "jti"]},
    )
    roles = claims.get("roles", [])
    if not isinstance(roles, list):
        raise jwt.InvalidTokenError("roles must be a list")
    lifetime = claims["exp"] - claims["iat"]
    if not isinstance(lifetime, int | float) or lifetime > settings.token_max_ttl_s:
        raise TokenTooLongLived(f"it lives {lifetime} s, more than {settings.token_max_ttl_s} s")
    return Principal(
        subject=str(claims["sub"]),
        roles=frozenset(str(r) for r in roles),
        token_id=str(claims["jti"]),
        expires_at=float(claims["exp"]),
    )


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header; Unauthorized if there is none."""
    if not authorization:
        raise Unauthorized(*TOKEN_REQUIRED)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(*TOKEN_REQUIRED)
    return token.strip()


class TokenVerifier:
    """Verifies bearer tokens for one API process, remembering the verified ones (see the module docstring)."""

    def __init__(self, settings: Settings, revoked: RevokedTokens | None = None, capacity: int = CACHE_SIZE) -> None:
        self.settings = settings
        self.revoked = revoked
        self.capacity = capacity
        self._verified: dict[str, Principal] = {}
        self.hits = 0
        self.misses = 0

    def verify(self, authorization: str | None) -> Principal:
        """The principal of an Authorization header; raises Unauthorized (never a PyJWT error)."""
        token = bearer_token(authorization)
        principal = self._verified.get(token)
        if principal is not None:
            if principal.expires_at <= time.time():
                del self._verified[token]
                raise Unauthorized(*TOKEN_EXPIRED)
            self.hits += 1
        else:
            self.misses += 1
            principal = self._decode(token)
            if len(self._verified) >= self.capacity:
                del self._verified[next(iter(self._verified))]  # the oldest entry
            self._verified[token] = principal
        if self.revoked is not None and self.revoked.is_revoked(principal.token_id):
            raise Unauthorized(*TOKEN_REVOKED)
        return principal

    def _decode(self, token: str) -> Principal:
        if not self.settings.jwt_secret:
            raise Unauthorized(*NO_SECRET)
        try:
            return decode_token(self.settings, token)
        except jwt.ExpiredSignatureError:
            raise Unauthorized(*TOKEN_EXPIRED) from None
        except TokenTooLongLived as exc:
            log.info("token refused: %s", exc)
            raise Unauthorized(*TOKEN_TOO_LONG) from None
        except jwt.InvalidTokenError as exc:
            log.info("token refused: %s: %s", type(exc).__name__, exc)
            raise Unauthorized(*TOKEN_INVALID) from None


def verifier_of(app_state: Any) -> TokenVerifier:
    verifier: TokenVerifier = app_state.token_verifier
    return verifier


# Declares the bearer scheme in the OpenAPI document; the token itself is read by the verifier.
_bearer = HTTPBearer(auto_error=False, description="A JWT issued by `rezerv token`")


async def current_principal(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    known = request.scope.get("state", {}).get(SCOPE_PRINCIPAL)
    if isinstance(known, Principal):
        return known
    try:
        return verifier_of(request.app.state).verify(request.headers.get("authorization"))
    except Unauthorized as exc:
        raise exc.problem() from None


async def require_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise ApiProblem(403, "admin-required", "Forbidden", "This operation needs the admin role.")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
