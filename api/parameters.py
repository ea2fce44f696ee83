"""Query-parameter checks shared by the listing routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from api.errors import ApiProblem


def known_parameters(*names: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing query parameters other than `names` with a 422."""
    allowed = frozenset(names)

    async def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise ApiProblem(
                422,
                "unknown-parameter",
                "Unknown query parameter",
                f"this route does not take {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}",
            )

    return check
