"""The outermost layer of the API: limits, authentication before the body, admission, the hot path.

In front of FastAPI, in this order, for every HTTP request:

1. A declared body larger than REZERV_API_MAX_BODY_BYTES is answered 413 without reading it;
   a body that turns out larger while being read (no Content-Length) is cut off the same way.
   (The request line and headers are limited one level down, in api/http_protocol.py.)
2. A request for a route that needs a token is refused (401) unless its bearer token verifies,
   before its body is read or parsed: a stranger's 50 MB of JSON costs nothing. The verified
   principal is left in the scope, where `current_principal` finds it (api/auth.py).
3. The hot requests (api/hot_routes.py) are admitted only while fewer are in progress than the
   limit of api/admission.py (the recent completion rate times REZERV_API_TARGET_LATENCY_MS,
   between REZERV_API_MIN_IN_FLIGHT and REZERV_API_MAX_IN_FLIGHT); past it they are answered 429
   with Retry-After at once. Why: a request that waits behind thousands of others answers late
   for everyone; refusing the excess early keeps the accepted ones fast, and a client that honours
   Retry-After (with the same Idempotency-Key) gets its hold a moment later instead of a timeout.
4. The hot requests are answered by the hot path; everything else by FastAPI.

The HTTP protocol (api/http_protocol.py) answers a plainly hot request without ASGI, through
`admit_hot` and `answer_hot` (the same route match, token check, admission and accounting as
`__call__`); what it does not take comes here.

It also keeps the in-flight gauge: after a load stops, uvicorn still runs the handlers of clients
that hung up, and an auditor must wait for that gauge to reach 0 before reading stock.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.responses import Response

from api.admission import Admission
from api.auth import SCOPE_PRINCIPAL, Principal, Unauthorized, current_principal, verifier_of
from api.errors import api_problem_response
from api.hot_routes import Answer, HotRoute, HotRoutes, Request
from api.metrics import IN_FLIGHT, Message, Receive, Scope, Send, observe
from api.problems import problem

RETRY_AFTER_S = "1"

Headers = list[tuple[bytes, bytes]]  # as the ASGI scope has them: lower-case names


class BodyTooLarge(Exception):
    """The body passed the limit while being read."""


class Edge:
    def __init__(self, app: FastAPI, hot: HotRoutes | None = None) -> None:
        self.app = app
        self.settings = app.state.settings
        self.hot = hot
        self.max_body = self.settings.api_max_body_bytes
        self.admission = Admission(
            self.settings.api_target_latency_ms / 1000,
            self.settings.api_min_in_flight,
            self.settings.api_max_in_flight,
            time.monotonic(),
        )
        self.hot_in_flight = 0
        self.rejected = 0  # hot requests answered 429
        self.answered = 0  # hot requests the hot path answered
        self.fallbacks = 0  # hot requests handed to FastAPI
        self._public: list[tuple[frozenset[str], re.Pattern[str]]] | None = None

    @property
    def state(self) -> Any:
        """The FastAPI application's state (settings, inventory, dependencies)."""
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        IN_FLIGHT.inc()
        try:
            await self._http(scope, receive, send)
        finally:
            IN_FLIGHT.dec()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        declared = content_length(headers)
        if declared is not None and declared > self.max_body:
            await _send(send, _too_large(self.max_body, scope["path"]))
            return
        method: str = scope["method"]
        path: str = scope["path"]
        route = self.hot.match(method, path) if self.hot is not None else None
        if route is None and self._is_public(method, path):
            await self.app(scope, _limited(receive, self.max_body), send)
            return
        try:
            principal = self._principal(headers)
        except Unauthorized as exc:
            response = api_problem_response(exc.problem(), path)
            await _send(send, response)
            return
        scope.setdefault("state", {})[SCOPE_PRINCIPAL] = principal
        if route is None:
            await self.app(scope, _limited(receive, self.max_body), send)
            return
        if not self.admission.admits(self.hot_in_flight):
            self.rejected += 1
            await _send(send, _overloaded(path))
            observe(route.template, method, 429, 0.0)
            return
        try:
            body = await _read_body(receive, self.max_body)
        except BodyTooLarge:
            await _send(send, _too_large(self.max_body, path))
            return
        answer = await self.answer_hot(route, method, path, headers, principal, body)
        if answer is None:  # not the plain case: FastAPI answers, from the body already read
            self.fallbacks += 1
            await self.app(scope, _replay(body, receive), send)
            return
        await _send_answer(send, answer)

    # ---- what the HTTP protocol calls for a hot request it answers itself (api/http_protocol.py) --
    def admit_hot(self, method: str, path: str, headers: Headers) -> tuple[HotRoute, Principal] | None:
        """A hot request's route and verified principal, if it is admitted now; None when it is not
        a hot route, its token does not verify or it is over the admission limit: then the request
        goes through ASGI and `__call__`, which gives each of those its answer (401, 429)."""
        if self.hot is None:
            return None
        route = self.hot.match(method, path)
        if route is None:
            return None
        try:
            principal = self._principal(headers)
        except Unauthorized:
            return None
        if not self.admission.admits(self.hot_in_flight):
            return None
        return route, principal

    async def answer_hot(
        self, route: HotRoute, method: str, path: str, headers: Headers, principal: Principal, body: bytes
    ) -> Answer | None:
        """The hot path's answer to an admitted request (None: not the plain case, FastAPI answers),
        counted in flight for the admission limit and observed in the metrics."""
        started = time.perf_counter()
        self.hot_in_flight += 1
        try:
            answer = await route.handler(Request(path, headers, principal, body), route.entity_id)
            if answer is not None:
                self.answered += 1
                observe(route.template, method, answer.status, time.perf_counter() - started)
            return answer
        finally:
            self.hot_in_flight -= 1
            self.admission.completed(time.monotonic())

    def _principal(self, headers: Headers) -> Principal:
        """Who the request's bearer token says it is (Unauthorized if it does not verify)."""
        return verifier_of(self.app.state).verify(_header(headers, b"authorization"))

    def _is_public(self, method: str, path: str) -> bool:
        """True for the routes that need no token (those whose dependencies do not include
        `current_principal`: health, metrics, docs, public reads). Unknown paths need a token."""
        if self._public is None:
            self._public = _public_routes(self.app)
        return any(method in methods and pattern.match(path) for methods, pattern in self._public)


def _public_routes(app: FastAPI) -> list[tuple[frozenset[str], re.Pattern[str]]]:
    return _public_of(app.routes)


def _public_of(routes: list[Any]) -> list[tuple[frozenset[str], re.Pattern[str]]]:
    """The public routes among `routes`, and among those of the routers included in them (FastAPI
    keeps an included router as one entry; rezerv includes its routers without a prefix, so
    their routes' own patterns are the paths served)."""
    public = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            public += _public_of(included.routes)
            continue
        methods = frozenset(getattr(route, "methods", None) or {"GET", "HEAD"})
        pattern = getattr(route, "path_regex", None)
        if pattern is None:
            continue
        if isinstance(route, APIRoute) and _needs_principal(route.dependant):
            continue
        public.append((methods, pattern))
    return public


def _needs_principal(dependant: Any) -> bool:
    return any(d.call is current_principal or _needs_principal(d) for d in dependant.dependencies)


# ---- the raw ASGI side ---------------------------------------------------------------------------
def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The request's declared Content-Length; None when it declares none, or one that is no number."""
    value = _header(headers, b"content-length")
    if value is None or not value.isdigit():
        return None
    return int(value)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive`, raising 413 for FastAPI (an HTTPException, which it answers) past `limit` bytes."""
    from starlette.exceptions import HTTPException

    total = 0

    async def limited() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > limit:
                raise HTTPException(413, f"the request body is over {limit} bytes")
        return message

    return limited


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over `body` (already read) once, then the connection's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send(send: Send, response: Response) -> None:
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


async def _send_answer(send: Send, answer: Answer) -> None:
    headers = [
        (b"content-type", answer.content_type),
        (b"content-length", str(len(answer.body)).encode()),
        *answer.headers,
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def _too_large(limit: int, path: str) -> Response:
    return problem(
        413, "Content too large", f"the request body is over {limit} bytes", kind="body-too-large", instance=path
    )


def _overloaded(path: str) -> Response:
    return problem(
        429,
        "Too many requests",
        "the server is at capacity; retry after Retry-After seconds with the same Idempotency-Key",
        kind="overloaded",
        instance=path,
        headers={"Retry-After": RETRY_AFTER_S},
        code="overloaded",
    )
