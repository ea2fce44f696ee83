"""Pagination cursors: an opaque, signed token holding where the next page starts.

Why signed: a cursor carries a position (the last row's sort key and id) that goes straight into
a query. Signing it (HMAC-SHA256 with a key derived from the API's secret) means the API only
ever reads positions it wrote itself, so a client cannot craft one, and a tampered or truncated
cursor is refused with a 400 instead of reaching the database. A cursor also names the query
it belongs to (its fingerprint): using it with other filters or another sort is a 400 too,
since "after this row" means nothing in another order.

Format: ``base64url(json([fingerprint, position])) "." base64url(hmac[:16])``; not secret, only
tamper-proof (a client may decode it, and must not rely on what it finds).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

import orjson

MAX_CURSOR_LENGTH = 512
_MAC_BYTES = 16


class InvalidCursor(ValueError):
    """The cursor was not made by this API for this query."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, secret: str | None) -> None:
        """`secret`: the API's secret (REZERV_JWT_SECRET), so every worker and every restart
        reads the others' cursors; without one, a random key (cursors then last one process)."""
        material = secret.encode() if secret else secrets.token_bytes(32)
        self._key = hashlib.sha256(b"rezerv cursor key\0" + material).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, fingerprint: str, position: tuple[Any, ...]) -> str:
        payload = orjson.dumps([fingerprint, list(position)])
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, cursor: str, fingerprint: str) -> tuple[Any, ...]:
        """The position in `cursor`; InvalidCursor if it was altered or belongs to another query."""
        if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
            raise InvalidCursor("the cursor is malformed")
        body, mac = cursor.split(".")
        try:
            payload, signature = _unb64(body), _unb64(mac)
        except ValueError:
            raise InvalidCursor("the cursor is malformed") from None
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise InvalidCursor("the cursor was not issued by this API or was altered")
        made_for, position = orjson.loads(payload)
        if made_for != fingerprint:
            raise InvalidCursor("the cursor belongs to a query with other filters or another sort")
        return tuple(position)
