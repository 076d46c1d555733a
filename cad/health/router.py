from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cad.deps import StateDep
from cad.errors import Unauthorized
from cad.health.schemas import LiveOut, ReadyOut
from cad.http import API_ERRORS, JSON, returns

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_class=JSON, responses=returns(LiveOut))
async def healthz() -> Any:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_class=JSON,
    responses={
        **returns(ReadyOut),
        503: {"model": ReadyOut, "description": "PostgreSQL or Redis is down"},
    },
)
async def readyz(state: StateDep) -> Any:
    """Readiness: PostgreSQL and Redis both answer; 503 names the one that does not."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            async with state.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"down: {type(exc).__name__}"
    try:
        async with asyncio.timeout(2):
            await state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"down: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = {
        "status": "ready" if ok else "not ready",
        "checks": checks,
        "leader": bool(state.leader and state.leader.is_leader),
        "hub": state.hub.mode if state.hub else None,
        "units_indexed": len(state.directory),
    }
    return JSON(body, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        401: API_ERRORS[401],
        422: API_ERRORS[422],
    },
)
async def metrics(
    state: StateDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Prometheus metrics; with CAD_METRICS_TOKEN set, only for that bearer token."""
    expected = state.settings.metrics_token
    if expected:
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("metrics need Authorization: Bearer <CAD_METRICS_TOKEN>")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
