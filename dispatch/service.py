"""Dispatch commands. Each runs inside the caller's transaction and writes its events
through the writer it is given (the cad floor owns both)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from dispatch import repository as repo
from dispatch.status import (
    AssignmentStatus,
    IllegalTransition,
    IncidentStatus,
    UnitStatus,
    assignment_status_for,
    check_unit_transition,
    derive_incident_status,
)


class Emit(Protocol):
    async def __call__(
        self,
        conn: asyncpg.Connection,
        type: str,
        actor: str,
        *,
        incident_id: int | None = None,
        unit_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> Any: ...


class DispatchError(Exception):
    """Base of dispatch's refusals; the cad edge maps them to HTTP."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class UnitNotFound(DispatchError):
    pass


class IncidentNotFound(DispatchError):
    pass


class UnitUnavailable(DispatchError):
    """Lost a race, or the unit was never free: the caller answers 409."""


class IncidentClosed(DispatchError):
    pass


class TransitionRefused(DispatchError):
    pass


class InvalidPressedAt(DispatchError):
    """A pressed time the record cannot take (the cad edge answers 422 on pressed_at)."""


# A device clock a little ahead of ours is tolerated; a press further in the future is not.
PRESSED_AT_SKEW_S = 30


def check_pressed_at(
    pressed_at: datetime | None, dispatched_at: datetime | None, now: datetime
) -> datetime | None:
    """When the officer pressed: not in the future, not before the job was sent. A press
    that arrives late (queued offline) keeps its own time; None means now."""
    if pressed_at is None:
        return None
    if (pressed_at - now).total_seconds() > PRESSED_AT_SKEW_S:
        raise InvalidPressedAt("is in the future (check the device's clock)")
    if dispatched_at is not None and pressed_at < dispatched_at:
        raise InvalidPressedAt("is before the unit was dispatched to this job")
    return min(pressed_at, now)


@dataclass(frozen=True, slots=True)
class AssignmentResult:
    assignment_id: int
    incident_id: int
    unit_id: int
    callsign: str
    dispatched_at: datetime
    incident_status: str


async def assign_unit(
    conn: asyncpg.Connection,
    emit: Emit,
    incident_id: int,
    unit_id: int,
    actor: str,
    *,
    auto: bool = False,
    divert_from_assignment: int | None = None,
) -> AssignmentResult:
    """Commit one unit to one incident, or refuse; never both for two callers."""
    incident = await repo.lock_incident(conn, incident_id)
    if incident is None:
        raise IncidentNotFound(f"incident {incident_id} not found")
    if incident["status"] == IncidentStatus.CLOSED:
        raise IncidentClosed(f"incident {incident['ref']} is closed")
    diverted: asyncpg.Record | None = None
    if divert_from_assignment is not None:
        unit = await repo.take_unit_for_divert(conn, unit_id, divert_from_assignment)
        if unit is not None:
            diverted = await repo.update_assignment(
                conn, divert_from_assignment, AssignmentStatus.CANCELLED, "diverted"
            )
    else:
        unit = await repo.take_available_unit(conn, unit_id)
    if unit is None:
        current = await repo.get_unit(conn, unit_id)
        if current is None:
            raise UnitNotFound(f"unit {unit_id} not found")
        raise UnitUnavailable(
            f"unit {current['callsign']} is {current['status']}, not available",
            unit_status=current["status"],
        )
    assignment = await repo.insert_assignment(conn, incident_id, unit_id, auto, actor)
    new_status = incident["status"]
    if incident["status"] == IncidentStatus.PENDING:
        await repo.set_incident_status(conn, incident_id, IncidentStatus.DISPATCHED)
        new_status = IncidentStatus.DISPATCHED.value
    if diverted is not None:
        await _refresh_incident(conn, emit, diverted["incident_id"], actor, returned=True)
    await emit(
        conn,
        "unit.assigned",
        actor,
        incident_id=incident_id,
        unit_id=unit_id,
        data={
            "assignment_id": assignment["id"],
            "callsign": unit["callsign"],
            "ref": incident["ref"],
            "grade": incident["grade"],
            "auto": auto,
            "diverted_from": diverted["incident_id"] if diverted is not None else None,
            "incident_status": new_status,
            "unit_status": UnitStatus.DISPATCHED.value,
            # Where it was sent from: with the arrival time, the record ETAs are learned
            # from (cad eta calibrate).
            "from_lat": unit["lat"],
            "from_lng": unit["lng"],
            "from_position_at": unit["position_at"].isoformat() if unit["position_at"] else None,
        },
    )
    return AssignmentResult(
        assignment["id"],
        incident_id,
        unit_id,
        unit["callsign"],
        assignment["dispatched_at"],
        str(new_status),
    )


async def _refresh_incident(
    conn: asyncpg.Connection,
    emit: Emit,
    incident_id: int,
    actor: str,
    *,
    returned: bool = False,
    auto_close_when_cleared: bool = False,
) -> str:
    """Re-derive an open incident's status from its assignments; event if it changed."""
    incident = await repo.lock_incident(conn, incident_id)
    if incident is None or incident["status"] == IncidentStatus.CLOSED:
        return IncidentStatus.CLOSED.value
    open_rows = await repo.open_assignments_for_incident(conn, incident_id)
    status = derive_incident_status([AssignmentStatus(r["status"]) for r in open_rows])
    attended = incident["first_on_scene_at"] is not None
    if status is IncidentStatus.PENDING and attended:
        if auto_close_when_cleared:
            await repo.close_incident(conn, incident_id, "ATTENDED")
            await emit(
                conn,
                "incident.closed",
                actor,
                incident_id=incident_id,
                data={
                    "ref": incident["ref"],
                    "result_code": "ATTENDED",
                    "auto": True,
                    "reason": "last unit cleared from scene",
                },
            )
            return IncidentStatus.CLOSED.value
        # Attended and all units gone: it stays "on scene" until a dispatcher closes it.
        status = IncidentStatus.ON_SCENE
    if status.value != incident["status"]:
        await repo.set_incident_status(conn, incident_id, status)
        await emit(
            conn,
            "incident.returned_to_queue"
            if returned and status is IncidentStatus.PENDING
            else "incident.status",
            actor,
            incident_id=incident_id,
            data={
                "ref": incident["ref"],
                "from": incident["status"],
                "to": status.value,
                "grade": incident["grade"],
            },
        )
    return status.value


async def set_unit_status(
    conn: asyncpg.Connection,
    emit: Emit,
    unit_id: int,
    wanted: UnitStatus,
    actor: str,
    *,
    incident_id: int | None = None,
    auto_close_when_cleared: bool = True,
    pressed_at: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Move a unit; the change applies to its one open assignment, never to others.

    ``incident_id``, when given, must name the job the unit holds: a late "on scene" for an
    old job must not land on the new one. ``pressed_at`` (an officer's press sent late)
    becomes the assignment's timestamp; the event records it beside the time received.
    """
    unit, assignment = await _lock_unit_and_job(conn, unit_id)
    current = UnitStatus(unit["status"])
    if incident_id is not None and (assignment is None or assignment["incident_id"] != incident_id):
        raise TransitionRefused(
            f"unit {unit['callsign']} is not assigned to incident {incident_id}"
        )
    if current is wanted:
        return {"unit_id": unit_id, "status": wanted.value, "changed": False}
    try:
        check_unit_transition(current, wanted)
    except IllegalTransition as exc:
        raise TransitionRefused(str(exc), allowed=exc.allowed, current=current.value) from exc
    pressed = check_pressed_at(
        pressed_at,
        assignment["dispatched_at"] if assignment is not None else None,
        now or datetime.now(UTC),
    )
    at = await repo.set_unit_status(conn, unit_id, wanted)
    data: dict[str, Any] = {"callsign": unit["callsign"], "from": current.value, "to": wanted.value}
    if pressed is not None:
        data["pressed_at"] = pressed.isoformat()
        data["received_at"] = at.isoformat()
    job = assignment["incident_id"] if assignment is not None else None
    if assignment is not None:
        data.update(await _move_assignment(conn, assignment, wanted, pressed))
    await emit(conn, "unit.status", actor, incident_id=job, unit_id=unit_id, data=data)
    if job is not None:
        data["incident_status"] = await _refresh_incident(
            conn, emit, job, actor, returned=True, auto_close_when_cleared=auto_close_when_cleared
        )
    return {
        "unit_id": unit_id,
        "status": wanted.value,
        "changed": True,
        "at": at.isoformat(),
        **data,
    }


async def acknowledge(
    conn: asyncpg.Connection,
    emit: Emit,
    unit_id: int,
    assignment_id: int,
    actor: str,
    *,
    pressed_at: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Phase two of a dispatch: the officer has seen the job (before setting off)."""
    unit, assignment = await _lock_unit_and_job(conn, unit_id)
    if assignment is None or assignment["id"] != assignment_id:
        raise TransitionRefused(
            f"unit {unit['callsign']} no longer holds this job (cancelled or reassigned)"
        )
    pressed = check_pressed_at(pressed_at, assignment["dispatched_at"], now or datetime.now(UTC))
    at = await repo.acknowledge_assignment(conn, assignment_id, pressed)
    if at is None:
        return {"assignment_id": assignment_id, "changed": False,
                "acknowledged_at": assignment["acknowledged_at"]}  # fmt: skip
    await emit(
        conn, "unit.acknowledged", actor, incident_id=assignment["incident_id"], unit_id=unit_id,
        data={"callsign": unit["callsign"], "assignment_id": assignment_id, "ref": assignment["ref"],
              "acknowledged_at": at.isoformat()},
    )  # fmt: skip
    return {"assignment_id": assignment_id, "changed": True, "acknowledged_at": at}


async def _lock_unit_and_job(
    conn: asyncpg.Connection, unit_id: int
) -> tuple[asyncpg.Record, asyncpg.Record | None]:
    """The unit and its one open assignment, both locked, incident first (the lock order
    everywhere); refused if the job changed between looking and locking."""
    seen = await repo.open_assignment_for_unit(conn, unit_id)
    if seen is not None:
        await repo.lock_incident(conn, seen["incident_id"])
    unit = await repo.lock_unit(conn, unit_id)
    if unit is None:
        raise UnitNotFound(f"unit {unit_id} not found")
    assignment = await repo.open_assignment_for_unit(conn, unit_id)
    if (assignment or {}).get("id") != (seen or {}).get("id"):
        raise UnitUnavailable("unit's job changed while updating; try again")
    return unit, assignment


def leaving_status(held: str) -> AssignmentStatus:
    """How an assignment ends when its unit leaves it: cleared after attending, otherwise
    stood down."""
    return (
        AssignmentStatus.CLEARED
        if held == AssignmentStatus.ON_SCENE
        else AssignmentStatus.CANCELLED
    )


async def _move_assignment(
    conn: asyncpg.Connection,
    assignment: asyncpg.Record,
    wanted: UnitStatus,
    pressed: datetime | None = None,
) -> dict[str, Any]:
    """Carry the unit's new status onto its assignment; the event data that says so."""
    moved = assignment_status_for(wanted) or leaving_status(assignment["status"])
    await repo.update_assignment(conn, assignment["id"], moved, None, pressed)
    return {
        "assignment_id": assignment["id"],
        "assignment_status": moved.value,
        "ref": assignment["ref"],
        "grade": assignment["grade"],
    }


async def release_incident_units(
    conn: asyncpg.Connection, emit: Emit, incident_id: int, actor: str, reason: str
) -> list[int]:
    """Closing an incident clears its units (only their assignment on this incident)."""
    freed: list[int] = []
    for row in await repo.open_assignments_for_incident(conn, incident_id):
        unit = await repo.lock_unit(conn, row["unit_id"])
        if unit is None:
            continue
        final = leaving_status(row["status"])
        await repo.update_assignment(conn, row["id"], final, reason)
        await repo.set_unit_status(conn, row["unit_id"], UnitStatus.AVAILABLE)
        await emit(
            conn,
            "unit.status",
            actor,
            incident_id=incident_id,
            unit_id=row["unit_id"],
            data={
                "callsign": row["callsign"],
                "from": unit["status"],
                "to": UnitStatus.AVAILABLE.value,
                "assignment_id": row["id"],
                "assignment_status": final.value,
                "reason": reason,
            },
        )
        freed.append(row["unit_id"])
    return freed


@dataclass(frozen=True, slots=True)
class PositionReport:
    unit_id: int
    lat: float
    lng: float
    at: datetime


async def record_positions(conn: asyncpg.Connection, reports: list[PositionReport]) -> list[int]:
    if not reports:
        return []
    # One report per unit per batch: the newest, so the bulk UPDATE touches each row once.
    newest: dict[int, PositionReport] = {}
    for r in reports:
        if r.unit_id not in newest or newest[r.unit_id].at <= r.at:
            newest[r.unit_id] = r
    # Row locks in id order: two overlapping batches can then never deadlock.
    batch = sorted(newest.values(), key=lambda r: r.unit_id)
    return await repo.record_positions(
        conn,
        [r.unit_id for r in batch],
        [r.lat for r in batch],
        [r.lng for r in batch],
        [r.at for r in batch],
    )
