"""The officer's emergency button: an I-grade "officer requires urgent assistance"
incident at the unit's position, the nearest units sent at once (lower-grade work
diverted if need be), and an alarm on every dispatcher and supervisor console that stays
until a person acknowledges it.

Everything happens in the press's one transaction: the incident, the units sent, the
alarm and the record of who pressed and when commit together or not at all. The units
are chosen by the same recommendation code the dispatchers and the engine use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from cad.auth.security import Principal
from cad.calls import service as calls_service
from cad.calls.schemas import CallIn
from cad.emergency import repository
from cad.errors import Conflict, Invalid, NotFound
from cad.events.writer import append_event
from cad.incidents import service as incidents_service
from cad.state import AppState
from cad.units import service as units_service
from dispatch import repository as dispatch_repo
from dispatch import service as dispatch_service
from dispatch.status import UnitStatus

log = structlog.get_logger(__name__)

EMERGENCY_TYPE = "OFFICER_ASSIST"
ENGINE_ACTOR = "engine:emergency"


def _out(row: asyncpg.Record, assigned: list[dict[str, Any]], shortfall: int) -> dict[str, Any]:
    out = dict(row)
    position_at = out.pop("position_at")
    out["position_age_s"] = (
        max(0, round((row["pressed_at"] - position_at).total_seconds()))
        if position_at is not None
        else None
    )
    out["assigned"] = assigned
    out["shortfall"] = shortfall
    return out


async def raise_emergency(
    conn: asyncpg.Connection,
    state: AppState,
    unit_id: int,
    principal: Principal,
    pressed_at: datetime | None,
    fix: tuple[float, float, datetime | None] | None,
) -> tuple[bool, dict[str, Any]]:
    """(created, the emergency). A press while one is open returns that one."""
    now = datetime.now(UTC)
    unit = await repository.lock_unit(conn, unit_id)
    if unit is None:
        raise NotFound(f"unit {unit_id} not found")
    existing = await repository.open_for_unit(conn, unit_id)
    if existing is not None:
        return False, _out(existing, await _sent(conn, existing["incident_id"], unit_id), 0)
    pressed = dispatch_service.check_pressed_at(pressed_at, None, now) or now
    if fix is not None:
        lat, lng, position_at = fix[0], fix[1], fix[2] or pressed
    elif unit["lat"] is not None:
        lat, lng, position_at = unit["lat"], unit["lng"], unit["position_at"]
    else:
        raise Invalid("lat", "no position known for this unit: send the device's lat and lng")
    age = round((pressed - position_at).total_seconds()) if position_at else None
    callsign = unit["callsign"]
    call = CallIn.model_validate(
        {
            "caller": {"name": f"{callsign} (emergency button, {principal.username})"},
            "location": {"lat": lat, "lng": lng},
            "location_source": "aml",
            "incident_type": EMERGENCY_TYPE,
            "description": (
                f"Officer requires urgent assistance: {callsign} pressed the emergency button "
                f"at {pressed:%H:%M:%S} UTC"
                + (f"; position {age} s old at the press" if age is not None else "")
            ),
            "received_at": pressed.isoformat(),
            "answered_at": pressed.isoformat(),
        }
    )
    recorded = await calls_service.record_call(
        conn, state, call, principal.user_id, principal.actor
    )
    incident = recorded["incident"]
    incident_id = int(incident["id"])
    emergency_id = await repository.insert(
        conn, unit_id, incident_id, principal.actor, pressed, lat, lng, position_at
    )
    assigned, shortfall = await _send_help(conn, state, incident_id, unit_id)
    await _attach_presser(conn, unit_id, incident_id, principal.actor)
    message = f"{callsign}: officer requires urgent assistance at {incident['ref']}" + (
        f" (position {age} s old)" if age is not None else ""
    )
    alarm_id = await repository.raise_alarm(conn, incident_id, unit_id, message)
    data = {
        "emergency_id": emergency_id, "callsign": callsign, "ref": incident["ref"],
        "pressed_by": principal.actor, "pressed_at": pressed.isoformat(),
        "position_age_s": age, "assigned": [a["callsign"] for a in assigned],
    }  # fmt: skip
    await append_event(
        conn, "emergency.raised", principal.actor, incident_id=incident_id, unit_id=unit_id,
        data=data,
    )  # fmt: skip
    await append_event(
        conn, "alarm.raised", principal.actor, incident_id=incident_id, unit_id=unit_id,
        data={"alarm_id": alarm_id, "kind": "officer_emergency", "message": message,
              "must_acknowledge": True, **data},
    )  # fmt: skip
    log.warning("emergency.raised", unit_id=unit_id, incident_id=incident_id, sent=len(assigned))
    row = await repository.get(conn, emergency_id)
    assert row is not None
    return True, _out(row, assigned, shortfall)


async def _send_help(
    conn: asyncpg.Connection, state: AppState, incident_id: int, presser: int
) -> tuple[list[dict[str, Any]], int]:
    """The nearest units by ETA, available ones first, then ones diverted from
    lower-grade work; the pressing unit is never sent to itself."""
    wanted = state.settings.emergency_units
    rec = await units_service.recommendations(conn, state, incident_id, frozenset({presser}))
    candidates = [(c["unit_id"], c["callsign"], None) for c in rec["recommended"]]
    candidates += [
        (c["unit_id"], c["callsign"], c["divert_from"])
        for c in rec["alternatives"]
        if c.get("divert_from") is not None
    ]
    sent: list[dict[str, Any]] = []
    tried: set[int] = {presser}
    for unit_id, callsign, divert_from in candidates:
        if len(sent) >= wanted:
            break
        if unit_id in tried:
            continue
        tried.add(unit_id)
        held = None
        if divert_from is not None:
            job = await dispatch_repo.open_assignment_for_unit(conn, unit_id)
            if job is None or job["incident_id"] != divert_from:
                continue
            held = job["id"]
        try:
            # A savepoint each: a unit another dispatcher just took is skipped, not fatal.
            async with conn.transaction():
                await dispatch_service.assign_unit(
                    conn, append_event, incident_id, unit_id, ENGINE_ACTOR, auto=True,
                    divert_from_assignment=held,
                )  # fmt: skip
        except dispatch_service.UnitUnavailable:
            continue
        sent.append({"unit_id": unit_id, "callsign": callsign, "diverted": held is not None})
    return sent, max(0, wanted - len(sent))


async def _attach_presser(
    conn: asyncpg.Connection, unit_id: int, incident_id: int, actor: str
) -> None:
    """The officer is at their own emergency: on scene of it, leaving any other job (which
    returns to the queue for the dispatcher). An off-duty or unavailable unit stays as is."""
    held = await dispatch_repo.open_assignment_for_unit(conn, unit_id)
    unit = await dispatch_repo.get_unit(conn, unit_id)
    if unit is None:
        return
    if held is None and unit["status"] != UnitStatus.AVAILABLE:
        return
    await dispatch_service.assign_unit(
        conn, append_event, incident_id, unit_id, actor,
        divert_from_assignment=held["id"] if held is not None else None,
    )  # fmt: skip
    await dispatch_service.set_unit_status(
        conn, append_event, unit_id, UnitStatus.ON_SCENE, actor, incident_id=incident_id
    )


async def _sent(conn: asyncpg.Connection, incident_id: int, presser: int) -> list[dict[str, Any]]:
    held = await dispatch_repo.open_assignments_for_incident(conn, incident_id)
    return [
        {"unit_id": r["unit_id"], "callsign": r["callsign"], "diverted": False}
        for r in held
        if r["unit_id"] != presser
    ]


async def current(conn: asyncpg.Connection, unit_id: int) -> dict[str, Any] | None:
    """The unit's open emergency, for its app (which may have been closed meanwhile)."""
    row = await repository.open_for_unit(conn, unit_id)
    if row is None:
        return None
    return {**_out(row, await _sent(conn, row["incident_id"], unit_id), 0), "already_open": True}


async def cancel(
    conn: asyncpg.Connection, unit_id: int, principal: Principal, reason: str
) -> dict[str, Any]:
    """The officer stands it down. The incident and its alarm stay: a dispatcher still
    acknowledges the alarm and decides what happens to the incident."""
    row = await repository.open_for_unit(conn, unit_id)
    if row is None:
        raise Conflict("this unit has no open emergency")
    await repository.cancel(conn, row["emergency_id"], principal.actor, reason)
    await incidents_service.add_remark(
        conn, row["incident_id"], f"Emergency cancelled by {principal.username}: {reason}",
        principal.actor,
    )  # fmt: skip
    await append_event(
        conn, "emergency.cancelled", principal.actor, incident_id=row["incident_id"],
        unit_id=unit_id,
        data={"emergency_id": row["emergency_id"], "callsign": row["callsign"], "reason": reason},
    )  # fmt: skip
    done = await repository.get(conn, row["emergency_id"])
    assert done is not None
    return _out(done, await _sent(conn, row["incident_id"], unit_id), 0)
