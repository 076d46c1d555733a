"""Incidents: references, the record's views, regrade, remarks, close, reopen, merge."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from cad.errors import Conflict, Invalid, NotFound
from cad.events import repository as events_repo
from cad.events.writer import append_event
from cad.grading import target_at
from cad.incidents import repository as repo
from cad.markers import service as markers_service
from cad.search import service as search_service
from cad.state import AppState
from dispatch import repository as dispatch_repo
from dispatch import service as dispatch_service
from dispatch.status import AssignmentStatus, derive_incident_status

LONDON = ZoneInfo("Europe/London")


def ref_suffix(day: date) -> str:
    """The day part of a control-room reference, ``CAD 1234/26NOV26``: unique per day."""
    return day.strftime("%d%b%y").upper()


def local_day(at: datetime) -> date:
    return at.astimezone(LONDON).date()


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def record_dict(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) for k, v in dict(row).items()}


def incident_out(row: asyncpg.Record | dict[str, Any], state: AppState) -> dict[str, Any]:
    out = record_dict(row)
    itype = state.catalogue.get(out["type_code"])
    area = state.areas.by_code(out["area_code"]) if out.get("area_code") else None
    out["type_name"] = itype.name if itype else out["type_code"]
    out["area"] = area.name if area else out.get("area_code")
    ward_code = out.get("ward_code")
    ward = state.wards.by_code(ward_code) if ward_code and state.wards is not None else None
    out["ward"] = ward.name if ward else ward_code
    grade = state.scheme.get(out["grade"])
    out["grade_name"] = grade.name if grade else out["grade"]
    return out


async def get_or_404(
    conn: asyncpg.Connection, incident_id: int, for_update: bool = False
) -> asyncpg.Record:
    row = await repo.get_incident(conn, incident_id, for_update)
    if row is None:
        raise NotFound(f"incident {incident_id} not found")
    return row


async def detail(conn: asyncpg.Connection, state: AppState, incident_id: int) -> dict[str, Any]:
    row = await get_or_404(conn, incident_id)
    out = incident_out(row, state)
    out["calls"] = [record_dict(c) for c in await repo.calls_for_incident(conn, incident_id)]
    out["assignments"] = [
        record_dict(a) for a in await repo.assignments_for_incident(conn, incident_id)
    ]
    out["timeline"] = [e.to_dict() for e in await events_repo.incident_events(conn, incident_id)]
    out["markers"] = markers_service.from_timeline(out["timeline"])
    out["history"] = await search_service.incident_history(conn, state, row, out["calls"])
    return out


async def regrade(
    conn: asyncpg.Connection, state: AppState, incident_id: int, grade: str, reason: str, actor: str
) -> dict[str, Any]:
    if grade not in state.scheme:
        raise Invalid("grade", f"unknown grade {grade!r}; one of {sorted(state.scheme)}")
    row = await get_or_404(conn, incident_id, for_update=True)
    if row["status"] == "closed":
        raise Conflict(f"incident {row['ref']} is closed; reopen it first")
    if row["grade"] == grade:
        raise Conflict(f"incident {row['ref']} is already grade {grade}")
    # The target runs from when the incident was created, not from the regrade.
    new_target = target_at(state.scheme[grade], row["created_at"])
    await repo.set_grade(conn, incident_id, grade, "manual", new_target)
    await append_event(
        conn,
        "incident.graded",
        actor,
        incident_id=incident_id,
        data={
            "ref": row["ref"],
            "from": row["grade"],
            "to": grade,
            "reason": reason,
            "target_at": _iso(new_target),
        },
    )
    return incident_out(await get_or_404(conn, incident_id), state)


async def add_remark(
    conn: asyncpg.Connection,
    incident_id: int,
    text: str,
    actor: str,
    *,
    pressed_at: datetime | None = None,
) -> dict[str, Any]:
    # The same rule as a late status press (a device clock may run a little ahead).
    dispatch_service.check_pressed_at(pressed_at, None, now_utc())
    row = await get_or_404(conn, incident_id)
    await repo.add_search_text(conn, incident_id, text)
    data: dict[str, Any] = {"ref": row["ref"], "text": text}
    if pressed_at is not None:
        data["written_at"] = pressed_at.isoformat()
    event = await append_event(
        conn,
        "incident.remark",
        actor,
        incident_id=incident_id,
        data=data,
    )
    return event.to_dict()


async def close(
    conn: asyncpg.Connection,
    state: AppState,
    incident_id: int,
    result_code: str,
    remarks: str,
    actor: str,
) -> dict[str, Any]:
    row = await get_or_404(conn, incident_id, for_update=True)
    if row["status"] == "closed":
        raise Conflict(f"incident {row['ref']} is already closed")
    freed = await dispatch_service.release_incident_units(
        conn, append_event, incident_id, actor, f"incident closed: {result_code}"
    )
    # The same statement the engine's auto-close uses: one definition of "closed".
    await dispatch_repo.close_incident(conn, incident_id, result_code)
    if remarks:
        await repo.add_search_text(conn, incident_id, remarks)
    await append_event(
        conn,
        "incident.closed",
        actor,
        incident_id=incident_id,
        data={
            "ref": row["ref"],
            "result_code": result_code,
            "remarks": remarks,
            "units_freed": freed,
            "auto": False,
        },
    )
    return incident_out(await get_or_404(conn, incident_id), state)


async def reopen(
    conn: asyncpg.Connection, state: AppState, incident_id: int, reason: str, actor: str
) -> dict[str, Any]:
    row = await get_or_404(conn, incident_id, for_update=True)
    if row["status"] != "closed":
        raise Conflict(f"incident {row['ref']} is not closed")
    if row["merged_into"] is not None:
        raise Conflict(f"incident {row['ref']} was merged into {row['merged_into']}")
    # Closing cleared its units: the status follows from the units actually on it now
    # (none, normally), never from whether someone attended before.
    held = await dispatch_repo.open_assignments_for_incident(conn, incident_id)
    status = derive_incident_status([AssignmentStatus(a["status"]) for a in held]).value
    await repo.reopen(conn, incident_id, status)
    await append_event(
        conn,
        "incident.reopened",
        actor,
        incident_id=incident_id,
        data={
            "ref": row["ref"],
            "reason": reason,
            "status": status,
            "units": [a["callsign"] for a in held],
            "previous_result": row["result_code"],
        },
    )
    return incident_out(await get_or_404(conn, incident_id), state)


async def merge(
    conn: asyncpg.Connection,
    state: AppState,
    incident_id: int,
    into_id: int,
    reason: str,
    actor: str,
) -> dict[str, Any]:
    """Two incidents turn out to be one: calls move to the survivor, the other closes."""
    if incident_id == into_id:
        raise Invalid("into_id", "cannot merge an incident into itself")
    # Lock both in id order, the order every other command uses.
    first, second = sorted((incident_id, into_id))
    await get_or_404(conn, first, for_update=True)
    await get_or_404(conn, second, for_update=True)
    source = await get_or_404(conn, incident_id)
    target = await get_or_404(conn, into_id)
    for inc in (source, target):
        if inc["status"] == "closed":
            raise Conflict(f"incident {inc['ref']} is closed")
    freed = await dispatch_service.release_incident_units(
        conn, append_event, incident_id, actor, f"merged into {target['ref']}"
    )
    moved = await repo.move_calls(conn, incident_id, into_id)
    await repo.merge_search_text(conn, incident_id, into_id)
    await repo.mark_merged(conn, incident_id, into_id)
    data = {
        "from_id": incident_id,
        "from_ref": source["ref"],
        "into_id": into_id,
        "into_ref": target["ref"],
        "calls_moved": moved,
        "units_freed": freed,
        "reason": reason,
    }
    await append_event(conn, "incident.merged", actor, incident_id=incident_id, data=data)
    await append_event(conn, "incident.merged_in", actor, incident_id=into_id, data=data)
    return incident_out(await get_or_404(conn, into_id), state)


async def open_board_page(
    conn: asyncpg.Connection,
    state: AppState,
    after_id: int,
    limit: int,
    areas: list[str] | None = None,
) -> dict[str, Any]:
    rows = await repo.open_page(conn, after_id, limit, areas)
    incidents = [incident_out(r, state) for r in rows]
    out: dict[str, Any] = {
        "incidents": incidents,
        "next_after_id": incidents[-1]["id"] if len(incidents) == limit else None,
    }
    if after_id == 0:
        # Counts with the first page, so a board knows the true size before it has it all.
        out["counts"] = await open_summary(conn, areas)
    return out


async def open_summary(conn: asyncpg.Connection, areas: list[str] | None = None) -> dict[str, Any]:
    by_grade: dict[str, int] = {}
    by_status: dict[str, int] = {"pending": 0, "dispatched": 0, "on_scene": 0}
    total = breached = 0
    for r in await repo.open_counts(conn, areas):
        by_grade[r["grade"]] = by_grade.get(r["grade"], 0) + r["n"]
        by_status[r["status"]] = by_status.get(r["status"], 0) + r["n"]
        total += r["n"]
        breached += r["breached"]
    return {"open": total, "by_grade": by_grade, "by_status": by_status, "breached": breached}


def now_utc() -> datetime:
    return datetime.now(UTC)


async def export(conn: asyncpg.Connection, state: AppState, incident_id: int) -> dict[str, Any]:
    record = await detail(conn, state, incident_id)
    return {
        "format": "cad999.incident-export/1",
        "exported_at": now_utc().isoformat(),
        "incident": record,
    }
