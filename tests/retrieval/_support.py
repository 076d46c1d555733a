"""Shared helpers for the retrieval tests: intake through the API, backdating through SQL
(the API records "now"; history needs incidents and calls weeks old), error fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.conftest import Api, call_body
from tests.intake._support import db, error_fields, post_call

LONDON = ZoneInfo("Europe/London")
# Far from each other (kilometres), so a test's places never see each other's history,
# duplicates or markers (a marker's radius is at most 1 km).
TRAFALGAR = (51.5074, -0.1278)  # St. James's, Westminster
LAMBETH = (51.4980, -0.1130)  # Bishop's, Lambeth
CAMDEN = (51.5390, -0.1426)
HACKNEY = (51.5450, -0.0553)
GREENWICH = (51.4826, 0.0077)
EALING = (51.5130, -0.3040)


async def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


async def call(api: Api, type_code: str = "THEFT", **extra: Any) -> dict[str, Any]:
    """POST /api/calls (lat/lng or any other call_body field as keywords); the answer."""
    lat, lng = extra.pop("at", TRAFALGAR)
    out: dict[str, Any] = await ok(
        await post_call(api, call_body(type_code, lat, lng, **extra)), 201
    )
    return out


async def incident(api: Api, type_code: str = "THEFT", **extra: Any) -> dict[str, Any]:
    inc: dict[str, Any] = (await call(api, type_code, **extra))["incident"]
    return inc


async def backdate_incident(api: Api, incident_id: int, at: datetime) -> None:
    """The incident and its calls as if taken at ``at`` (the API cannot backdate)."""
    async with db(api.settings.database_url) as conn:
        await conn.execute("UPDATE incidents SET created_at = $2 WHERE id = $1", incident_id, at)
        await conn.execute(
            "UPDATE calls SET created_at = $2 WHERE incident_id = $1", incident_id, at
        )


async def backdate_call(api: Api, call_id: int, at: datetime) -> None:
    async with db(api.settings.database_url) as conn:
        await conn.execute("UPDATE calls SET created_at = $2 WHERE id = $1", call_id, at)


def london_day(at: datetime | str) -> str:
    """ "2 Dec": the day as the console's history line gives it (London time)."""
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    local = when.astimezone(LONDON)
    return f"{local.day} {local:%b}"


def fields(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 422, r.text
    return error_fields(r)


async def table_counts(api: Api, *tables: str) -> dict[str, int]:
    async with db(api.settings.database_url) as conn:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables}  # noqa: S608


async def unit_id(api: Api, callsign: str) -> int:
    units = await ok(await api.as_("dispatcher", "GET", "/api/units"))
    return int(next(u["id"] for u in units if u["callsign"] == callsign))


async def assign(api: Api, incident_id: int, callsign: str) -> int:
    """Send a unit (by callsign) to an incident; its id."""
    uid = await unit_id(api, callsign)
    await ok(
        await api.as_(
            "dispatcher", "POST", f"/api/incidents/{incident_id}/assignments", json={"unit_id": uid}
        ),
        201,
    )
    return uid


async def move_unit(api: Api, uid: int, *statuses: str) -> None:
    for status in statuses:
        await ok(
            await api.as_("dispatcher", "POST", f"/api/units/{uid}/status", json={"status": status})
        )
