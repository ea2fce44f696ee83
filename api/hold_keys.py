"""Hold ids derived from Idempotency-Keys, and who may act on a hold.

A hold's id is ``uuid5(NAMESPACE, "customer/kind/entity/key")``. Why derive it instead of
storing a key -> hold map: a retry with the same key lands on the same hold id, and the entity
answers a repeated hold with the first answer (or IdempotencyConflict for another body), so
idempotency costs the API no storage and no extra round trip.

The same derivation is the ownership proof. Bookings are not in the entity's public view and the
engine has no "owner of hold" query, so a customer proves a hold is theirs by presenting the key
they created it with (header ``X-Hold-Key``): only that customer's subject and that key give
back the hold id. Admins need no proof. Customer ids and entity ids cannot contain ``/``
(api/schemas.py ID_PATTERN), so the name is unambiguous even though a key may contain one.

NAMESPACE must never change: every existing hold id, and so every retry and every ownership
proof, depends on it.
"""

from __future__ import annotations

import hashlib
import uuid

from api.auth import Principal
from api.errors import ApiProblem
from api.schemas import ID_RE

NAMESPACE = uuid.UUID("dd088673-413b-4156-98e8-f0cab753829f")
IDEMPOTENCY_KEY = "Idempotency-Key"
HOLD_KEY = "X-Hold-Key"
MAX_KEY_LENGTH = 128


_NAMESPACE_BYTES = NAMESPACE.bytes


def hold_id_for(customer_id: str, kind: str, entity_id: str, key: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))``, computed without building a UUID object (a quarter of
    the time, on every hold request); tests/unit/api/test_hold_keys.py holds the two equal."""
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + f"{customer_id}/{kind}/{entity_id}/{key}".encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _valid_key(key: str | None) -> bool:
    return key is not None and 0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()


def require_idempotency_key(key: str | None) -> str:
    """The request's Idempotency-Key. A hold without one would be unsafe to retry: 400. One that
    is there but unusable (too long, a control character such as NUL, not ASCII): 422, like any
    other malformed field."""
    if not key:
        raise ApiProblem(
            400,
            "idempotency-key-required",
            "Idempotency-Key required",
            f"a hold needs an {IDEMPOTENCY_KEY} header; it is required",
        )
    if not _valid_key(key):
        raise ApiProblem(
            422,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            f"the {IDEMPOTENCY_KEY} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
            " (no control characters)",
        )
    return key


def acting_customer(principal: Principal, requested: str | None) -> str:
    """Whom a hold is for: the token's subject, or (admins only) the customer named in the body."""
    if requested is None or requested == principal.subject:
        if not ID_RE.fullmatch(principal.subject):
            raise ApiProblem(403, "invalid-subject", "Forbidden", "the token's subject is not a valid customer id")
        return principal.subject
    if not principal.is_admin:
        raise ApiProblem(403, "not-your-customer-id", "Forbidden", "only an admin may hold for another customer")
    return requested


def require_hold_owner(principal: Principal, kind: str, entity_id: str, hold_id: str, hold_key: str | None) -> None:
    """Admins may act on any hold; a customer must present the key that derives `hold_id`."""
    if principal.is_admin:
        return
    if hold_key is None or not _valid_key(hold_key):
        raise ApiProblem(
            403, "not-your-hold", "Forbidden", f"a customer acting on a hold must send the hold's key in {HOLD_KEY}"
        )
    if hold_id_for(principal.subject, kind, entity_id, hold_key) != hold_id:
        raise ApiProblem(403, "not-your-hold", "Forbidden", f"hold {hold_id} is not yours (or {HOLD_KEY} is wrong)")


def require_self_or_admin(principal: Principal, customer_id: str) -> None:
    if not principal.may_act_for(customer_id):
        raise ApiProblem(403, "not-your-wallet", "Forbidden", f"only {customer_id} or an admin may use this wallet")
