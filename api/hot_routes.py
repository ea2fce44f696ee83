"""The three requests a flash sale is made of, answered without FastAPI's per-request machinery.

`POST /events/{id}/holds`, `POST /cars/{id}/holds` and `GET /bookings/{id}` are most of the
traffic at the hot moment. Through FastAPI each cost about 300 us of CPU before the engine was
even asked (routing through every route, dependency resolution, the middleware stack); the API
process was the first to run out of CPU. Here they cost a path split, a cached token lookup, one
pydantic validation and the answer.

A shortcut, not a second implementation: the routes stay declared in FastAPI (the OpenAPI
document, and the fallback), every rule is shared with them (api/holds.py, the bodies' pydantic
models, `routes_bookings.visible`, `errors.problem_for`), and whatever is not the plain case
(invalid JSON or body, another content type, a bad id, a missing Idempotency-Key, holding for
someone else) is handed to FastAPI with the body already read, so every refusal is FastAPI's own
answer. A test (tests/unit/api/test_hot_routes.py) sends the same requests both ways and compares
the answers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError

from api.auth import Principal
from api.errors import ApiProblem, api_problem_response, problem_for
from api.hold_keys import IDEMPOTENCY_KEY
from api.holds import car_hold, granted_body, ticket_hold
from api.inventory import inventory_of
from api.routes_bookings import booking_body, visible
from api.schemas import ID_RE, HoldCarIn, HoldTicketsIn
from engine import tracing
from engine.config import Settings
from engine.domain.commands import Command
from engine.domain.errors import RezervError
from engine.domain.results import HoldGranted, Reply

JSON = b"application/json"
_KEY_HEADER = IDEMPOTENCY_KEY.lower().encode("latin-1")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: bytes = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


class Request:
    """What a hot handler needs of the request, taken from the ASGI scope once by the edge."""

    __slots__ = ("body", "content_type", "headers", "path", "principal")

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]], principal: Principal, body: bytes) -> None:
        self.path = path
        self.headers = headers
        self.principal = principal
        self.body = body
        self.content_type = b""
        for name, value in headers:
            if name == b"content-type":
                self.content_type = value
                break

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None


Handler = Callable[[Request, str], Awaitable[Answer | None]]


@dataclass(frozen=True, slots=True)
class HotRoute:
    template: str  # the FastAPI route's path, for the metrics
    handler: Handler
    entity_id: str


def _is_json(content_type: bytes) -> bool:
    return content_type == JSON or content_type.startswith(JSON + b";")


class HotRoutes:
    """Matches the hot requests and answers them (None: FastAPI answers, see the module docstring)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.settings: Settings = app.state.settings

    def match(self, method: str, path: str) -> HotRoute | None:
        parts = path.split("/")
        if method == "POST" and len(parts) == 4 and parts[3] == "holds" and not parts[0]:
            if parts[1] == "events":
                return HotRoute("/events/{event_id}/holds", self.hold_tickets, parts[2])
            if parts[1] == "cars":
                return HotRoute("/cars/{car_id}/holds", self.hold_car, parts[2])
        elif method == "GET" and len(parts) == 3 and parts[1] == "bookings" and not parts[0]:
            return HotRoute("/bookings/{hold_id}", self.read_booking, parts[2])
        return None

    # ---- holds ---------------------------------------------------------------------------------
    async def hold_tickets(self, request: Request, event_id: str) -> Answer | None:
        return await self._hold(request, event_id, HoldTicketsIn, "event_id")

    async def hold_car(self, request: Request, car_id: str) -> Answer | None:
        return await self._hold(request, car_id, HoldCarIn, "car_id")

    async def _hold(self, request: Request, entity_id: str, model: type[BaseModel], id_field: str) -> Answer | None:
        if not ID_RE.fullmatch(entity_id) or not _is_json(request.content_type):
            return None
        try:
            body: Any = model.model_validate(orjson.loads(request.body))
        except (orjson.JSONDecodeError, ValidationError):
            return None
        key = request.header(_KEY_HEADER)
        try:
            command: Command = (
                ticket_hold(self.settings, request.principal, entity_id, body, key)
                if isinstance(body, HoldTicketsIn)
                else car_hold(self.settings, request.principal, entity_id, body, key)
            )
        except ApiProblem:
            return None
        try:
            inventory = await inventory_of(self.app)
        except RezervError as error:
            return _problem(error, request.path)
        if tracing.ENABLED:
            return await self._traced_hold(request, inventory, command, id_field)
        return _hold_answer(await inventory.request(command), request.path, id_field)

    async def _traced_hold(self, request: Request, inventory: Any, command: Any, id_field: str) -> Answer:
        """`_hold`'s last step with tracing on: the same answer, and a root span if the booking is sampled."""
        template = "/events/{event_id}/holds" if id_field == "event_id" else "/cars/{car_id}/holds"
        span = tracing.start_request(f"POST {template}", command.hold_id, time.time_ns())
        answer = _hold_answer(await inventory.request(command, span), request.path, id_field)
        if span is not None:
            span.finish(answer.status, time.time_ns())
        return answer

    # ---- bookings ------------------------------------------------------------------------------
    async def read_booking(self, request: Request, hold_id: str) -> Answer | None:
        if not ID_RE.fullmatch(hold_id):
            return None
        try:
            booking = visible(await self.app.state.bookings.get(hold_id), request.principal, hold_id)
        except RezervError as error:
            return _problem(error, request.path)
        except ApiProblem as problem:
            return _answer(api_problem_response(problem, request.path))
        return Answer(200, orjson.dumps(booking_body(booking)))


def _hold_answer(reply: Reply, path: str, id_field: str) -> Answer:
    """A hold's reply as the route's answer: 201 with the hold, or the error's problem."""
    if isinstance(reply, RezervError):
        return _problem(reply, path)
    assert isinstance(reply, HoldGranted), "a hold succeeds with HoldGranted"
    return Answer(201, orjson.dumps(granted_body(reply, id_field)))


def _problem(error: RezervError, path: str) -> Answer:
    return _answer(problem_for(error, path))


def _answer(response: Any) -> Answer:
    """A Starlette response (a problem) as an Answer; problems are rare, so the conversion is fine."""
    headers = tuple((k, v) for k, v in response.raw_headers if k not in (b"content-type", b"content-length"))
    content_type = dict(response.raw_headers).get(b"content-type", JSON)
    return Answer(response.status_code, bytes(response.body), content_type, headers)
