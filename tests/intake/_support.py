"""Shared helpers for the intake tests: row counts and event reads straight from PostgreSQL.

Reads go through their own connection (not the app's pool), so what they see is what
was committed, never what a request's open transaction holds.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx

from cad.db.pool import connect
from tests.conftest import Api

COUNTS_SQL = """SELECT (SELECT count(*) FROM incidents) AS incidents,
    (SELECT count(*) FROM calls) AS calls, (SELECT count(*) FROM events) AS events,
    (SELECT count(*) FROM idempotency_keys) AS idempotency_keys,
    (SELECT count(*) FROM assignments) AS assignments"""
# Metres per degree of latitude: close enough to place test points at a chosen distance.
M_PER_DEG_LAT = 111_200.0


@asynccontextmanager
async def db(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(db_url)
    try:
        yield conn
    finally:
        await conn.close()


async def counts(db_url: str) -> dict[str, int]:
    async with db(db_url) as conn:
        return dict(await conn.fetchrow(COUNTS_SQL))


async def events_for(db_url: str, incident_id: int) -> list[asyncpg.Record]:
    async with db(db_url) as conn:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT seq, type, actor, unit_id, data FROM events WHERE incident_id = $1 ORDER BY seq",
            incident_id,
        )
        return rows


def offset(
    lat: float, lng: float, north_m: float = 0.0, east_m: float = 0.0
) -> tuple[float, float]:
    """A point the given metres north/east of (lat, lng)."""
    dlat = north_m / M_PER_DEG_LAT
    dlng = east_m / (M_PER_DEG_LAT * math.cos(math.radians(lat)))
    return lat + dlat, lng + dlng


async def post_call(
    api: Api, body: dict[str, Any], user: str = "handler", key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await api.as_(user, "POST", "/api/calls", json=body, headers=headers)


async def new_incident(api: Api, body: dict[str, Any], user: str = "handler") -> dict[str, Any]:
    r = await post_call(api, body, user)
    assert r.status_code == 201, r.text
    incident: dict[str, Any] = r.json()["incident"]
    return incident


def error_fields(r: httpx.Response) -> dict[str, str]:
    body = r.json()
    assert body["code"] == "invalid", body
    return {e["field"]: e["reason"] for e in body["errors"]}
