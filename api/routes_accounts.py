"""Accounts over HTTP: register, log in, refresh, log out (engine/accounts.py does the work).

All four are public routes (no bearer token needed: the edge lets them through), each refusal a
problem with a stable code: 422 for a login name or password that breaks the rules, 409 for a
taken login, 401 for wrong credentials or a refresh token that cannot be used, 429 with
Retry-After when failed log-ins (or registrations) from a login name or an address are over the
limit, 503 with Retry-After when too many password checks are already waiting.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.responses import Response

from api.auth import Principal, Unauthorized, issue_token_with_id, verifier_of
from api.errors import ApiProblem, status_of
from api.responses import OrjsonResponse
from api.schemas import Body, problem_responses
from engine.accounts import AccessToken, Account, AccountService, Session, Throttled
from engine.config import Settings
from engine.domain.errors import DomainError
from engine.passwords import PasswordsBusy

router = APIRouter(tags=["accounts"])

Password = Annotated[str, Field(strict=True, min_length=1, max_length=1024)]
Login = Annotated[str, Field(strict=True, min_length=1, max_length=254, description="an email address or a username")]


class RegisterIn(Body):
    login: Login
    password: Password


class LoginIn(Body):
    login: Login
    password: Password


class RefreshIn(Body):
    refresh_token: Annotated[str, Field(strict=True, min_length=1, max_length=256)]


class LogoutIn(Body):
    refresh_token: Annotated[str, Field(strict=True, max_length=256)] = ""


def refusal(error: DomainError) -> ApiProblem:
    """The problem for an account refusal (statuses in api/errors.py STATUS), with Retry-After
    when throttled."""
    status, title = status_of(error)
    headers = {"Retry-After": str(max(1, int(error.retry_after_s + 0.999)))} if isinstance(error, Throttled) else None
    return ApiProblem(status, error.code, title, error.message, headers=headers)


def service_of(request: Request) -> AccountService:
    service: AccountService = request.app.state.accounts
    return service


def address_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _act(coro: Any) -> Any:
    try:
        return await coro
    except PasswordsBusy:
        raise ApiProblem(
            503, "busy", "Busy", "Too many log-ins at once; try again in a second.", headers={"Retry-After": "1"}
        ) from None
    except DomainError as error:
        raise refusal(error) from None


def session_body(session: Session) -> dict[str, Any]:
    return {
        "access_token": session.access.token,
        "token_type": "Bearer",
        "expires_in": max(0, (session.access.expires_at_ms - time.time_ns() // 1_000_000) // 1000),
        "refresh_token": session.refresh_token,
        "refresh_expires_at_ms": session.refresh_expires_at_ms,
        "customer_id": session.account.account_id,
        "role": session.account.role,
    }


def access_issuer(settings: Settings) -> Any:
    def issue(account: Account) -> AccessToken:
        token, jti, exp = issue_token_with_id(
            settings,
            account.account_id,
            (account.role,),
            int(min(settings.access_token_ttl_s, settings.token_max_ttl_s)),
        )
        return AccessToken(token, jti, exp * 1000)

    return issue


@router.post(
    "/auth/register",
    summary="Create a customer account (email or username, and a password)",
    status_code=201,
    responses=problem_responses(409, 422, 429, 503),
)
async def register(body: RegisterIn, request: Request) -> Response:
    account = await _act(service_of(request).register(body.login, body.password, address_of(request)))
    return OrjsonResponse({"customer_id": account.account_id, "login": account.login, "role": account.role}, 201)


@router.post(
    "/auth/login",
    summary="Log in: a short-lived access token and a refresh token",
    responses=problem_responses(401, 422, 429, 503),
)
async def login(body: LoginIn, request: Request) -> Response:
    session = await _act(service_of(request).login(body.login, body.password, address_of(request)))
    return OrjsonResponse(session_body(session))


@router.post(
    "/auth/refresh",
    summary="A new access token and refresh token for a refresh token (which is used up)",
    responses=problem_responses(401, 422, 503),
)
async def refresh(body: RefreshIn, request: Request) -> Response:
    return OrjsonResponse(session_body(await _act(service_of(request).refresh(body.refresh_token))))


@router.post(
    "/auth/logout",
    summary="End the refresh token's log-in and the request's access token",
    status_code=204,
    responses=problem_responses(422, 503),
)
async def logout(body: LogoutIn, request: Request) -> Response:
    principal: Principal | None = None
    if request.headers.get("authorization"):
        try:
            principal = verifier_of(request.app.state).verify(request.headers.get("authorization"))
        except Unauthorized:
            principal = None  # an expired access token must not stop a log-out
    access = (principal.token_id, int(principal.expires_at * 1000)) if principal else None
    await _act(service_of(request).logout(body.refresh_token or None, access))
    return Response(status_code=204)
