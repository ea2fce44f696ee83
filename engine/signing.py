"""Signed HTTP bodies: HMAC-SHA256 over a timestamp and the body, for provider callbacks (the
provider signs, rezerv checks) and notification webhooks (rezerv signs, the customer checks).

Header: ``Rezerv-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``. Binding the
timestamp into the MAC means a captured request cannot be replayed later with a fresh time: the
receiver refuses any signature whose time is more than `tolerance_s` away from its own clock,
and within that window the receiver's own idempotency (a provider reference credited once, a
notification id delivered once) makes a replay change nothing. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Rezerv-Signature"


class BadSignature(Exception):
    """The signature is missing, malformed, wrong, or too old; `code` says which."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, now_s: float) -> str:
    """The header value signing `body` at `now_s`."""
    t = int(now_s)
    return f"t={t},v1={mac(secret, t, body)}"


def verify(secret: str, header: str | None, body: bytes, now_s: float, tolerance_s: float = 300.0) -> int:
    """The signed timestamp if `header` signs `body` with `secret` within `tolerance_s` of `now_s`;
    raises BadSignature otherwise."""
    if not secret:
        raise BadSignature("no-secret", "no signing secret is configured")
    if not header:
        raise BadSignature("signature-missing", f"the {HEADER} header is missing")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    if not stamp.isdigit() or not given:
        raise BadSignature("signature-malformed", f"{HEADER} must be t=<seconds>,v1=<hex>")
    timestamp = int(stamp)
    if not hmac.compare_digest(mac(secret, timestamp, body), given):
        raise BadSignature("signature-invalid", "the signature does not match the body")
    if abs(now_s - timestamp) > tolerance_s:
        raise BadSignature("signature-expired", f"the signature's time is more than {tolerance_s:.0f} s away")
    return timestamp
