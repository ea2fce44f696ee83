"""JWT bearer authentication (HS256): the token's subject is the customer, its roles grant admin.

Tokens are issued by `rezerv token` (and printed by `rezerv up` for the admin). A customer may
act only for itself; an admin may act for anyone and manage inventory.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.config import Settings

ALGORITHM = "HS256"
_bearer = HTTPBearer(auto_error=False, description="A JWT issued by `rezerv token`")


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def may_act_for(self, customer_id: str) -> bool:
        return self.is_admin or self.subject == customer_id


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
    return Principal(subject=str(claims["sub"]), roles=frozenset(str(r) for r in roles))


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise HTTPException(401, "a bearer token is required", headers=_UNAUTHORIZED)
    settings: Settings = request.app.state.settings
    if not settings.jwt_secret:
        raise HTTPException(401, "the server has no REZERV_JWT_SECRET; no token can be accepted")
    try:
        return decode_token(settings, credentials.credentials)
    except jwt.ExpiredSignatureError:
        raise HTTPException(401, "the token has expired", headers=_UNAUTHORIZED) from None
    except jwt.InvalidTokenError as exc:
        raise HTTPException(401, f"the token is not valid: {exc}", headers=_UNAUTHORIZED) from None


async def require_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise HTTPException(403, "this operation needs the admin role")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
