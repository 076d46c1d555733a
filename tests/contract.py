"""The API contract, checked on every response the suite receives.

Each in-process client (tests/conftest.py) runs `check` as an httpx response hook: the
response's status must be one openapi.json documents for that operation, and its body
must validate against the schema documented for that status (schemathesis' own
response-schema check). So every test is also a contract test, and a route that sends a
field, a status or a shape the document does not describe fails wherever it is exercised.
"""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from schemathesis.specs.openapi.schemas import OpenApiSchema

_schema: OpenApiSchema | None = None

# Not operations of the document: the consoles' files, the root redirect, the docs.
_OUTSIDE = ("/console", "/favicon", "/docs", "/redoc", "/openapi.json")


def _load(app: Any) -> OpenApiSchema:
    # The document is the same for every app the suite builds; parse it once per process.
    global _schema
    if _schema is None:
        _schema = schemathesis.openapi.from_dict(app.openapi())
    return _schema


class ContractBroken(AssertionError):
    pass


def check(app: Any, response: httpx.Response) -> None:
    request = response.request
    path = request.url.path
    if path == "/" or path.startswith(_OUTSIDE):
        return
    schema = _load(app)
    operation = schema.find_operation_by_path(request.method, path)
    if operation is None:
        if response.status_code in (404, 405):
            return  # no such route: the framework's answer, in our error shape
        raise ContractBroken(f"{request.method} {path} answered but is not in openapi.json")
    documented = operation.definition.raw.get("responses", {})
    status = str(response.status_code)
    if status not in documented and f"{status[0]}XX" not in documented:
        raise ContractBroken(
            f"{operation.label} answered {status}, which openapi.json does not document "
            f"(documents {sorted(documented)}): {response.text[:300]}"
        )
    try:
        _ = request.content
    except httpx.RequestNotRead:
        # A streamed upload (the oversized-body test): its bytes are gone, and the check
        # needs only the method and URL of the request.
        response.request = httpx.Request(request.method, request.url, headers=request.headers)
    try:
        operation.validate_response(response)
    except Exception as exc:  # schemathesis' FailureGroup: say which route and why
        raise ContractBroken(f"{operation.label} -> {status} breaks its schema:\n{exc}") from exc


def hooks(app: Any) -> dict[str, list[Any]]:
    async def on_response(response: httpx.Response) -> None:
        await response.aread()
        check(app, response)

    return {"response": [on_response]}
