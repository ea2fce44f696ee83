"""Signed bodies: a signature checks out only for its body, its secret and a time near now."""

from __future__ import annotations

import pytest

from engine.signing import BadSignature, sign, verify

BODY = b'{"provider_ref":"p1","amount":500}'
NOW = 1_800_000_000.0


def test_a_signature_checks_out_for_its_body_and_secret() -> None:
    assert verify("s3cret", sign("s3cret", BODY, NOW), BODY, NOW + 10) == int(NOW)


@pytest.mark.parametrize(
    ("header", "body", "secret", "now", "code"),
    [
        (None, BODY, "s3cret", NOW, "signature-missing"),
        ("v1=abc", BODY, "s3cret", NOW, "signature-malformed"),
        (sign("s3cret", BODY, NOW), BODY.replace(b"500", b"900"), "s3cret", NOW, "signature-invalid"),
        (sign("other", BODY, NOW), BODY, "s3cret", NOW, "signature-invalid"),
        (sign("s3cret", BODY, NOW), BODY, "s3cret", NOW + 301, "signature-expired"),
        (sign("s3cret", BODY, NOW), BODY, "s3cret", NOW - 301, "signature-expired"),
        (
            sign("s3cret", BODY, NOW).replace(f"t={int(NOW)}", f"t={int(NOW) + 100}"),
            BODY,
            "s3cret",
            NOW,
            "signature-invalid",
        ),
        (sign("", BODY, NOW), BODY, "", NOW, "no-secret"),
    ],
)
def test_anything_else_is_refused_with_its_reason(
    header: str | None, body: bytes, secret: str, now: float, code: str
) -> None:
    with pytest.raises(BadSignature) as refused:
        verify(secret, header, body, now, 300)
    assert refused.value.code == code
