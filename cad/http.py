"""The HTTP edge's shared pieces: the JSON response every route uses (orjson, which also
knows datetimes), the one error shape, and how a route declares what it returns.

Routes declare their bodies with `returns(Model)` rather than `response_model=`: the
schema goes into openapi.json for integrators, but a response is not re-validated and
re-serialised through pydantic on the hot path. Drift between the two is caught by the
suite instead, which checks every response every test receives against openapi.json
(tests/contract.py) and fuzzes every operation with schemathesis' response checks.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class Out(BaseModel):
    """Base of every response body: a field the code sends but the contract does not name
    fails the contract check, so the document cannot fall behind the code."""

    model_config = ConfigDict(extra="forbid")


class FieldError(Out):
    field: str
    reason: str


class ErrorOut(BaseModel):
    """Every 4xx and 5xx: a sentence, a stable code, and for 422 each field with its reason.
    Some errors add context (the unit, the incident, `retry_after_s`), hence extra allowed."""

    model_config = ConfigDict(extra="allow")

    detail: str
    code: str
    errors: list[FieldError] | None = None


_ERROR_MEANING = {
    401: "Not signed in, or the token has expired",
    403: "Signed in, but this role may not do this",
    404: "No such resource",
    409: "Conflicts with the current state (e.g. the unit is already committed)",
    413: "Request body too large",
    422: "A field is missing or invalid; `errors` names each field and the reason",
    429: "Too many requests; see Retry-After",
    503: "A store is unavailable; retry",
}
API_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": meaning}
    for status, meaning in _ERROR_MEANING.items()
}


def returns(model: Any, status: int = 200, description: str = "Success") -> dict[int | str, Any]:
    """The `responses=` of a route whose success body is `model`."""
    return {status: {"model": model, "description": description}}
