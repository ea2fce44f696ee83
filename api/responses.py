"""JSON responses serialized by orjson (FastAPI's ORJSONResponse is deprecated)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def iso_utc(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 in UTC with milliseconds, e.g. 2027-02-12T18:30:00.000Z."""
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
