"""JSON responses serialized by orjson (FastAPI's ORJSONResponse is deprecated)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def iso_utc(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 in UTC with milliseconds, e.g. 2027-02-12T18:30:00.000Z.

    Formatted from `time.gmtime`, a third of the time of building a datetime, on every hold
    answer; tests/unit/api/test_responses.py holds it equal to datetime's isoformat."""
    t = time.gmtime(ms // 1000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - the fastest formatting here
        t.tm_year,
        t.tm_mon,
        t.tm_mday,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
        ms % 1000,
    )
