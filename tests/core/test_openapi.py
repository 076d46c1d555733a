"""openapi.json is a contract an integrator can generate a client from: every operation
names the shape of its success body and of its errors. What the code actually sends is
checked against it on every response of the suite (tests/contract.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from tests.conftest import Api

# Bodies that are not JSON by design.
NOT_JSON = {("get", "/metrics")}


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _describes_a_body(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    schema = _resolve(spec, schema)
    return bool({"type", "properties", "anyOf", "oneOf", "allOf", "items"} & schema.keys())


async def test_every_operation_documents_its_success_and_error_bodies(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    missing: list[str] = []
    operations = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            operations += 1
            label = f"{method.upper()} {path}"
            ok = [s for s in op["responses"] if s.startswith("2")]
            if len(ok) != 1:
                missing.append(f"{label}: success statuses {ok}")
                continue
            content = op["responses"][ok[0]].get("content", {})
            if (method, path) in NOT_JSON:
                if "application/json" in content:
                    missing.append(f"{label}: documented as JSON")
                continue
            schema = content.get("application/json", {}).get("schema", {})
            if not _describes_a_body(spec, schema):
                missing.append(f"{label} {ok[0]}: no response schema")
            if path.startswith("/api/"):
                for status in ("401", "422"):
                    err = op["responses"].get(status, {}).get("content", {})
                    ref = err.get("application/json", {}).get("schema", {}).get("$ref", "")
                    if not ref.endswith("/ErrorOut"):
                        missing.append(f"{label} {status}: not the error shape ({ref or 'none'})")
    assert operations >= 37, operations
    assert not missing, "\n".join(missing)


async def test_the_contract_check_catches_a_body_that_drifts(api: Api) -> None:
    """The suite-wide check is not a formality: a body the document does not describe
    fails it (here a forged /healthz answer with an undeclared field)."""
    from tests import contract

    request = httpx.Request("GET", "http://test/healthz")

    def answer(status: int, body: dict[str, Any]) -> httpx.Response:
        response = httpx.Response(status, json=body, request=request)
        response.elapsed = timedelta(0)
        return response

    good = answer(200, {"status": "ok"})
    contract.check(api.app, good)
    drifted = answer(200, {"status": "ok", "uptime": 3})
    try:
        contract.check(api.app, drifted)
    except contract.ContractBroken as exc:
        assert "uptime" in str(exc), exc
    else:
        raise AssertionError("a body with an undeclared field passed the contract check")
    undocumented = answer(418, {"detail": "x", "code": "teapot"})
    try:
        contract.check(api.app, undocumented)
    except contract.ContractBroken as exc:
        assert "418" in str(exc), exc
    else:
        raise AssertionError("an undocumented status passed the contract check")
