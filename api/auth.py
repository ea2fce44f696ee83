"""JWT bearer authentication (HS256): the token's subject is the customer, its roles grant admin.

Tokens are issued by `rezerv token` (and printed by `rezerv up` for the admin). A customer may
act only for itself; an admin may act for anyone and manage inventory.

Verifying a token (HMAC, base64, JSON, claims) costs PyJWT about 50 us, which was 10-17% of the
API process under load, and a customer sends the same token with every request. So a verified
token is kept in a bounded cache (`TokenVerifier`), keyed by the token string itself: a hit
still checks the expiry against the clock, so a cached token stops working the moment it
expires, and a token that was never verified is never in the cache. The cache is per process
and forgets its oldest entries first when full.

The edge (api/edge.py) verifies the token of every protected request before its body is read
and leaves the principal in the ASGI scope; the `current_principal` dependency takes it from
there, so a request is verified once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.config import Settings

ALGORITHM = "HS256"
SCOPE_PRINCIPAL = "rezerv.principal"  # where the edge leaves the verified principal in the scope's state
CACHE_SIZE = 100_000  # verified tokens kept per process (~300 bytes each)


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]
    token_id: str = ""  # the token's `jti`
    expires_at: float = 0.0  # the token's `exp`, Unix seconds

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def may_act_for(self, customer_id: str) -> bool:
        return self.is_admin or self.subject == customer_id


class Unauthorized(Exception):
    """No usable token: answered 401 with `WWW-Authenticate: Bearer` and a plain reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def issue_token(settings: Settings, subject: str, roles: tuple[str, ...] = ("customer",), ttl_s: int = 3600) -> str:
    if not settings.jwt_secret:
        raise ValueError("REZERV_JWT_SECRET is not set")
    now = int(time.time())
    claims = {
        "sub": subject,
        "roles": list(roles),
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def decode_token(settings: Settings, token: str) -> Principal:
    """The token's principal; raises jwt.InvalidTokenError (ExpiredSignatureError when expired)."""
    claims = jwt.decode(
        token,
        settings.jwt_secret,
        algorithms=[ALGORITHM],
        audience=settings.jwt_audience,
        options={"require": ["sub", "exp", "aud"]},
    )
    roles = claims.get("roles", [])
    if not isinstance(roles, list):
        raise jwt.InvalidTokenError("roles must be a list")
    return Principal(
        subject=str(claims["sub"]),
        roles=frozenset(str(r) for r in roles),
        token_id=str(claims.get("jti", "")),
        expires_at=float(claims["exp"]),
    )


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header; Unauthorized if there is none."""
    if not authorization:
        raise Unauthorized("a bearer token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required")
    return token.strip()


class TokenVerifier:
    """Verifies bearer tokens for one API process, remembering the verified ones (see the module docstring)."""

    def __init__(self, settings: Settings, capacity: int = CACHE_SIZE) -> None:
        self.settings = settings
        self.capacity = capacity
        self._verified: dict[str, Principal] = {}
        self.hits = 0
        self.misses = 0

    def verify(self, authorization: str | None) -> Principal:
        """The principal of an Authorization header; raises Unauthorized (never a PyJWT error)."""
        token = bearer_token(authorization)
        principal = self._verified.get(token)
        if principal is not None:
            if principal.expires_at > time.time():
                self.hits += 1
                return principal
            del self._verified[token]
            raise Unauthorized("the token has expired")
        self.misses += 1
        if not self.settings.jwt_secret:
            raise Unauthorized("the server has no REZERV_JWT_SECRET; no token can be accepted")
        try:
            principal = decode_token(self.settings, token)
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("the token is not valid") from None
        if len(self._verified) >= self.capacity:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[token] = principal
        return principal


def verifier_of(app_state: Any) -> TokenVerifier:
    verifier: TokenVerifier = app_state.token_verifier
    return verifier


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
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
        raise HTTPException(401, exc.reason, headers=_UNAUTHORIZED) from None


async def require_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise HTTPException(403, "this operation needs the admin role")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
