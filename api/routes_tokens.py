"""Token administration: revoking a token by its id (admin). See api/revocation.py for how every
API worker learns of it, and `rezerv revoke` for the same from the command line."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.auth import AdminPrincipal
from api.responses import OrjsonResponse
from api.revocation import RevokedTokens
from api.schemas import RevokedTokenOut, RevokeTokenIn, problem_responses
from engine.config import Settings
from engine.domain.errors import StoreUnavailable
from engine.ports import RevocationStore

router = APIRouter()


@router.post(
    "/tokens/revocations",
    tags=["tokens"],
    summary="Revoke a token by its id (admin); every API worker refuses it within about a second",
    status_code=201,
    responses={
        201: {"model": RevokedTokenOut, "description": "revoked"},
        200: {"model": RevokedTokenOut, "description": "it was revoked already"},
        **problem_responses(401, 403, 422, 503),
    },
)
async def revoke_token(body: RevokeTokenIn, _admin: AdminPrincipal, request: Request) -> Response:
    settings: Settings = request.app.state.settings
    store: RevocationStore | None = request.app.state.revocations
    if store is None:
        raise StoreUnavailable("the API has no revocation store")
    # Whatever token carries this id expires before the longest lifetime allowed from now.
    until = time.time_ns() // 1_000_000 + int(settings.token_max_ttl_s * 1000)
    changed = await store.revoke(body.token_id, until, body.reason)
    revoked: RevokedTokens = request.app.state.revoked_tokens
    revoked.add(body.token_id)
    return OrjsonResponse(
        {"token_id": body.token_id, "revoked": True, "changed": changed}, status_code=201 if changed else 200
    )
