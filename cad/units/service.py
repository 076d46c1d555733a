"""The cad side of dispatch: wiring dispatch's commands to requests, events and the
worker's fleet picture."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from cad.deps import tx
from cad.errors import Conflict, Forbidden, Invalid, NotFound
from cad.events.writer import append_event
from cad.incidents.service import get_or_404, incident_out, record_dict
from cad.markers import service as markers_service
from cad.observability import ASSIGN_CONFLICTS, ASSIGNMENTS
from cad.search import service as search_service
from cad.state import AppState
from cad.units.schemas import PositionIn
from dispatch import repository as dispatch_repo
from dispatch import service as dispatch_service
from dispatch.engine import plan_for, remaining_needs
from dispatch.model import FALLBACK_PLAN
from dispatch.recommend import recommend
from dispatch.status import UnitStatus


def unit_out(row: asyncpg.Record, state: AppState) -> dict[str, Any]:
    out = record_dict(row)
    out["capabilities"] = list(row["capabilities"])
    # Where the unit is now, as a sector: its ward from its last position.
    ward = None
    if state.wards is not None and row["lat"] is not None and row["lng"] is not None:
        ward = state.wards.area_for(row["lat"], row["lng"])
    out["ward_code"] = ward.code if ward else None
    out["ward"] = ward.name if ward else None
    return out


async def unit_has_incident(
    conn: asyncpg.Connection, unit_id: int | None, incident_id: int
) -> bool:
    if unit_id is None:
        return False
    value = await conn.fetchval(
        "SELECT 1 FROM assignments WHERE unit_id = $1 AND incident_id = $2 LIMIT 1",
        unit_id,
        incident_id,
    )
    return value is not None


async def recommendations(
    conn: asyncpg.Connection,
    state: AppState,
    incident_id: int,
    exclude: frozenset[int] = frozenset(),
) -> dict[str, Any]:
    incident = await get_or_404(conn, incident_id)
    plan = plan_for(state.plans, incident["type_code"])
    held = await dispatch_repo.open_assignments_for_incident(conn, incident_id)
    needs = remaining_needs(plan, [frozenset(r["capabilities"]) for r in held])
    if not needs:
        # Plan met: still offer the nearest response units for a dispatcher who wants more.
        needs = list(FALLBACK_PLAN)
    rec = recommend(
        state.directory,
        incident["lat"],
        incident["lng"],
        needs,
        state.eta,
        datetime.now(UTC),
        grade=incident["grade"],
        stale_after_s=state.settings.stale_position_s,
        exclude=exclude,
    )
    out = rec.as_dict()
    out["incident_id"] = incident_id
    out["ref"] = incident["ref"]
    out["plan"] = [{"capability": n.capability, "count": n.count} for n in plan]
    out["recommendations"] = [c.as_dict() for c in rec.recommended + rec.alternatives]
    return out


async def assign(
    state: AppState, incident_id: int, unit_id: int, divert: bool, actor: str
) -> dict[str, Any]:
    try:
        async with tx(state) as conn:
            divert_from = None
            if divert:
                held = await dispatch_repo.open_assignment_for_unit(conn, unit_id)
                if held is None:
                    raise Invalid("divert", "the unit holds no job to divert it from")
                divert_from = held["id"]
            result = await dispatch_service.assign_unit(
                conn,
                append_event,
                incident_id,
                unit_id,
                actor,
                divert_from_assignment=divert_from,
            )
    except dispatch_service.UnitUnavailable as exc:
        ASSIGN_CONFLICTS.inc()
        async with tx(state) as conn:
            nxt = await recommendations(conn, state, incident_id, frozenset({unit_id}))
        best = nxt["recommended"][0] if nxt["recommended"] else None
        raise Conflict(exc.detail, next_recommendation=best, **exc.extra) from exc
    ASSIGNMENTS.labels("false").inc()
    state.directory.apply_status(unit_id, UnitStatus.DISPATCHED, incident_id, None)
    return {
        "assignment_id": result.assignment_id,
        "incident_id": result.incident_id,
        "unit_id": result.unit_id,
        "callsign": result.callsign,
        "dispatched_at": result.dispatched_at.isoformat(),
        "incident_status": result.incident_status,
    }


async def set_status(
    conn: asyncpg.Connection,
    state: AppState,
    unit_id: int,
    status: UnitStatus,
    incident_id: int | None,
    actor: str,
    *,
    pressed_at: datetime | None = None,
) -> dict[str, Any]:
    return await dispatch_service.set_unit_status(
        conn, append_event, unit_id, status, actor, incident_id=incident_id, pressed_at=pressed_at
    )


async def record_positions(
    conn: asyncpg.Connection, state: AppState, reports: list[PositionIn], own_unit: int | None
) -> list[tuple[int, float, float, datetime]]:
    now = datetime.now(UTC)
    if own_unit is not None and any(r.unit_id != own_unit for r in reports):
        raise Forbidden("a unit may only report its own position")
    for i, r in enumerate(reports):
        if r.at is not None and r.at > now + timedelta(seconds=30):
            raise Invalid(f"[{i}].at", "is in the future")
    ids = sorted({r.unit_id for r in reports})
    known = await dispatch_repo.existing_unit_ids(conn, ids)
    missing = [u for u in ids if u not in known]
    if missing:
        raise NotFound(f"unknown unit ids: {missing[:10]}")
    batch = [dispatch_service.PositionReport(r.unit_id, r.lat, r.lng, r.at or now) for r in reports]
    applied = set(await dispatch_service.record_positions(conn, batch))
    return [(b.unit_id, b.lat, b.lng, b.at) for b in batch if b.unit_id in applied]


async def me(conn: asyncpg.Connection, state: AppState, unit_id: int) -> dict[str, Any]:
    unit = await dispatch_repo.get_unit(conn, unit_id)
    if unit is None:
        raise NotFound(f"unit {unit_id} not found")
    out = unit_out(unit, state)
    held = await dispatch_repo.open_assignment_for_unit(conn, unit_id)
    out["job"] = None
    if held is not None:
        incident = await get_or_404(conn, held["incident_id"])
        history = await search_service.incident_history(conn, state, incident)
        out["job"] = {
            "assignment_id": held["id"],
            "assignment_status": held["status"],
            "incident": incident_out(incident, state),
            # What the officer must see before arrival: the markers recorded on the job.
            "markers": await markers_service.for_incident(conn, incident["id"]),
            "history_line": history["line"],
        }
    return out
