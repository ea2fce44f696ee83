"""The generator's ceiling: the null API's answers and the table's arithmetic
(loadtest/generator_ceiling.py, loadtest/null_api.py; a real run: tests/e2e/test_generator_ceiling.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from loadtest.generator_ceiling import StepFigures
from loadtest.null_api import answer, asgi_app


def _split(response: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head, body = response.split(b"\r\n\r\n", 1)
    status, *lines = head.split(b"\r\n")
    headers = dict(line.split(b": ", 1) for line in lines)
    return status, headers, body


def test_a_hold_is_answered_201_with_what_the_scenario_reads_from_rezervs_answer() -> None:
    status, headers, body = _split(answer(b"POST", b"/events/e-1/holds", 7, 1_000))
    assert status == b"HTTP/1.1 201 Created"
    assert int(headers[b"content-length"]) == len(body)
    hold = json.loads(body)
    assert hold["hold_id"] == "null-7"
    assert hold["amount"] > 0
    assert hold["expires_at_ms"] > 1_000


def test_a_bookings_read_is_answered_200_and_anything_else_404() -> None:
    status, _, body = _split(answer(b"GET", b"/bookings/null-7", 8, 1_000))
    assert status == b"HTTP/1.1 200 OK"
    assert json.loads(body)["hold_id"] == "null-7"
    assert _split(answer(b"GET", b"/events/e-1/holds", 9, 1_000))[0].startswith(b"HTTP/1.1 404")
    assert _split(answer(b"POST", b"/auth/login", 10, 1_000))[0].startswith(b"HTTP/1.1 404")


def test_cpu_per_booking_is_the_share_of_a_core_over_the_bookings_a_second() -> None:
    step = StepFigures(16, 2_000.0, 2.0, 4.0, 4.0, 80.0, 10.0, 95.0, 3.1)
    assert step.per_booking_us(80.0) == pytest.approx(400.0)
    assert step.row() == "| 16 | 2,000 | 2 / 4 | 4 | 80% (400) | 10% (50) | 95% | 3.10 |"


def test_the_asgi_app_gives_the_same_answers_as_the_null_protocol() -> None:
    sent: list[dict[str, Any]] = []
    chunks: list[dict[str, Any]] = [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.request"}]
    bodies = iter(chunks)

    async def receive() -> dict[str, Any]:
        return next(bodies)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/events/e-1/holds"}
    asyncio.run(asgi_app(scope, receive, send))
    start, body = sent
    assert start["status"] == 201
    assert dict(start["headers"])[b"content-length"] == str(len(body["body"])).encode()
    assert json.loads(body["body"])["hold_id"].startswith("null-")
    assert next(bodies, None) is None  # the whole body was read before answering
