"""The OpenAPI document describes the answers the API really gives.

FastAPI documents every response as `application/json` and adds its own 422 (a list of pydantic
errors, `HTTPValidationError`) to every route with parameters. rezerv answers every error as an
RFC 9457 problem instead (`application/problem+json`, api/problems.py and api/errors.py), its
422s included. So once, when the document is first built, every 4xx and 5xx response is
rewritten to what is sent: `application/problem+json` with the `ProblemOut` schema, and FastAPI's
validation-error schemas are dropped. A schema-driven fuzz run (tests/unit/api/test_fuzz_openapi.py)
holds the document to the answers.

The key headers are declared optional to FastAPI so that the API itself answers a missing
Idempotency-Key (400 `idempotency-key-required`) and a malformed one (422
`invalid-idempotency-key`), not FastAPI's generic 422; the document says what they are: the
Idempotency-Key is required on holds, and both are 1 to 128 printable ASCII characters.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.hold_keys import HOLD_KEY, IDEMPOTENCY_KEY, MAX_KEY_LENGTH
from api.problems import PROBLEM_MEDIA_TYPE
from api.schemas import ProblemOut

PROBLEM_REF = {"$ref": "#/components/schemas/ProblemOut"}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
# Printable ASCII, without a space at either end (HTTP drops those).
KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_KEY_LENGTH,
    "pattern": r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$",
}


def with_problem_responses(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with every error response documented as the problem it is (changed in place)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header" and parameter.get("name") in (IDEMPOTENCY_KEY, HOLD_KEY):
                    parameter["schema"] = {**KEY_SCHEMA, "description": parameter.get("description", "")}
                    parameter["required"] = parameter["name"] == IDEMPOTENCY_KEY
            for status, response in operation.get("responses", {}).items():
                if status.startswith("4") or _documents_a_problem(response):
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}
                    if response.get("description") == "Validation Error":
                        response["description"] = "an RFC 9457 problem: the request is not valid"
    if "ProblemOut" not in schemas:
        schemas["ProblemOut"] = ProblemOut.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    return spec


def _documents_a_problem(response: dict[str, Any]) -> bool:
    return any(media.get("schema") == PROBLEM_REF for media in response.get("content", {}).values())


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (and /openapi.json, /docs) serve the rewritten document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_problem_responses(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
