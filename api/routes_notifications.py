"""Notifications over HTTP: the list (paged, unread filter, mark read), the live stream (Server-Sent
Events, sse-starlette) and the customer's webhook. See engine/notifications.py for where they
come from; the customer (or an admin) only.

The stream sends each new notification as an event whose `id` is the notification id, so a
client that reconnects with `Last-Event-ID` gets what it missed from the store first. It ends
when the access token it was opened with expires or is revoked (the client reconnects with a
fresh one), and sends a comment every 15 s so proxies keep it open.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import Field, field_validator
from sse_starlette.sse import EventSourceResponse
from starlette.responses import Response

from api.auth import CurrentPrincipal, Principal
from api.errors import ApiProblem
from api.notification_hub import NotificationHub
from api.responses import OrjsonResponse
from api.schemas import ID_PATTERN, Body, problem_responses
from engine.notifications import Stored, Webhook, body
from engine.ports import NotificationStore

router = APIRouter(tags=["notifications"])

PathId = Annotated[str, Path(pattern=ID_PATTERN)]
MAX_PAGE = 200
TOP = 2**62
PING_S = 15


class MarkReadIn(Body):
    ids: list[Annotated[int, Field(strict=True, ge=1)]] | None = Field(None, max_length=MAX_PAGE)
    all: bool = Field(False, description="mark every notification of the customer read")


class WebhookIn(Body):
    url: Annotated[str, Field(strict=True, min_length=8, max_length=2000)]

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a webhook is an http:// or https:// URL with a host")
        return url


def _mine(principal: Principal, customer_id: str) -> None:
    if not principal.may_act_for(customer_id):
        raise ApiProblem(403, "not-your-notifications", "Forbidden", f"only {customer_id} or an admin may see these")


def _store(request: Request) -> NotificationStore:
    store: NotificationStore = request.app.state.notifications
    return store


@router.get(
    "/customers/{customer_id}/notifications",
    summary="The customer's notifications, newest first (unread only with unread=true)",
    responses=problem_responses(401, 403, 422, 503),
)
async def list_notifications(
    customer_id: PathId,
    principal: CurrentPrincipal,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[int | None, Query(ge=1, description="next_cursor of the previous page")] = None,
    unread: bool = False,
) -> Response:
    _mine(principal, customer_id)
    rows = await _store(request).page(customer_id, cursor or TOP, limit + 1, unread)
    page = rows[:limit]
    next_cursor = page[-1].id if len(rows) > limit else None
    return OrjsonResponse(
        {"customer_id": customer_id, "notifications": [body(s) for s in page], "next_cursor": next_cursor}
    )


@router.post(
    "/customers/{customer_id}/notifications/read",
    summary="Mark notifications read: the given ids, or all",
    responses=problem_responses(401, 403, 422, 503),
)
async def mark_read(
    customer_id: PathId, payload: MarkReadIn, principal: CurrentPrincipal, request: Request
) -> Response:
    _mine(principal, customer_id)
    if payload.all == (payload.ids is not None):
        raise ApiProblem(422, "ids-or-all", "Invalid request", "send either `ids` or `all: true`")
    changed = await _store(request).mark_read(
        customer_id, None if payload.all else payload.ids, time.time_ns() // 10**6
    )
    return OrjsonResponse({"marked_read": changed})


@router.get(
    "/customers/{customer_id}/notifications/stream",
    summary="New notifications as they happen (Server-Sent Events); Last-Event-ID resumes",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "an event per notification"},
        **problem_responses(401, 403, 503),
    },
)
async def stream(
    customer_id: PathId,
    principal: CurrentPrincipal,
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> Response:
    _mine(principal, customer_id)
    store, hub = _store(request), request.app.state.notification_hub
    resume = int(last_event_id) if last_event_id and last_event_id.isdigit() else None
    queue = hub.subscribe(customer_id)
    try:
        start = resume if resume is not None else await store.last_id()
    except BaseException:
        hub.unsubscribe(customer_id, queue)
        raise
    return EventSourceResponse(
        _events(request, principal, customer_id, hub, queue, start, resume is not None), ping=PING_S
    )


async def _events(
    request: Request,
    principal: Principal,
    customer_id: str,
    hub: NotificationHub,
    queue: asyncio.Queue[Stored],
    last: int,
    replay: bool,
) -> AsyncIterator[dict[str, str]]:
    revoked = request.app.state.revoked_tokens
    try:
        if replay:
            for stored in await hub.store.after([customer_id], last, 500):
                last = stored.id
                yield _event(stored)
        while True:
            left = principal.expires_at - time.time()
            if left <= 0 or revoked.is_revoked(principal.token_id):
                return
            try:
                stored = await asyncio.wait_for(queue.get(), min(left, PING_S))
            except TimeoutError:
                continue
            if stored.id > last:
                last = stored.id
                yield _event(stored)
    finally:
        hub.unsubscribe(customer_id, queue)


def _event(stored: Stored) -> dict[str, str]:
    return {"id": str(stored.id), "event": "notification", "data": orjson.dumps(body(stored)).decode()}


# ---- webhooks ------------------------------------------------------------------------------------
@router.put(
    "/customers/{customer_id}/webhook",
    summary="Register (or replace) the customer's webhook; answers its signing secret, once",
    status_code=201,
    responses=problem_responses(401, 403, 422, 503),
)
async def set_webhook(
    customer_id: PathId, payload: WebhookIn, principal: CurrentPrincipal, request: Request
) -> Response:
    """Every new notification is POSTed there as JSON, signed like the provider's callbacks:
    `Rezerv-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>` with the secret
    answered here (keep it: it is not shown again). A delivery that fails is retried with a
    growing delay and parked after REZERV_WEBHOOK_MAX_ATTEMPTS attempts."""
    _mine(principal, customer_id)
    secret = "whsec_" + secrets.token_urlsafe(24)
    await _store(request).set_webhook(Webhook(customer_id, payload.url, secret))
    return OrjsonResponse({"customer_id": customer_id, "url": payload.url, "secret": secret}, status_code=201)


@router.get(
    "/customers/{customer_id}/webhook", summary="The customer's webhook", responses=problem_responses(401, 403, 404)
)
async def get_webhook(customer_id: PathId, principal: CurrentPrincipal, request: Request) -> Response:
    _mine(principal, customer_id)
    hook = await _store(request).webhook(customer_id)
    if hook is None:
        raise ApiProblem(404, "no-webhook", "Not found", f"{customer_id} has no webhook")
    parked = await _store(request).dead_letters(customer_id)
    return OrjsonResponse(
        {
            "customer_id": customer_id,
            "url": hook.url,
            "dead_letters": [{"notification_id": n, "attempts": a, "last_error": e} for n, a, e in parked],
        }
    )


@router.delete(
    "/customers/{customer_id}/webhook",
    summary="Remove the webhook",
    status_code=204,
    responses=problem_responses(401, 403),
)
async def delete_webhook(customer_id: PathId, principal: CurrentPrincipal, request: Request) -> Response:
    _mine(principal, customer_id)
    await _store(request).delete_webhook(customer_id)
    return Response(status_code=204)
