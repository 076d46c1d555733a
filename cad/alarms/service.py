"""Safety timers: targets, acknowledgements and time on scene, kept in the database and
worked by the elected leader every few seconds, so a restart loses none."""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from cad.alarms import repository as repo
from cad.errors import Conflict, NotFound
from cad.events.writer import append_event
from cad.state import AppState
from cad.units.service import recommendations
from dispatch.engine import Transaction
from dispatch.service import Emit

log = structlog.get_logger(__name__)

TIMER_ACTOR = "engine:timers"


async def check_timers(transaction: Transaction, emit: Emit, state: AppState) -> tuple[int, int]:
    """Raise alarms for conditions that hold and clear the ones that no longer do."""
    catalogue = state.catalogue
    codes = list(catalogue)
    limits = [catalogue[c].on_scene_limit_min for c in codes]
    targeted = [g.code for g in state.scheme.values() if g.target_s is not None]
    raised = cleared = 0
    async with transaction() as conn:
        due = await repo.due_alarms(conn, state.settings.ack_timeout_s, codes, limits, targeted)
        due_keys = {(r["kind"], r["incident_id"] or 0, r["unit_id"] or 0) for r in due}
        for alarm in await repo.open_alarms(conn):
            key = (alarm["kind"], alarm["incident_id"] or 0, alarm["unit_id"] or 0)
            if alarm["kind"] in repo.TIMER_KINDS and key not in due_keys:
                await repo.clear_alarm(conn, alarm["id"])
                await emit(
                    conn,
                    "alarm.cleared",
                    TIMER_ACTOR,
                    incident_id=alarm["incident_id"],
                    unit_id=alarm["unit_id"],
                    data={"alarm_id": alarm["id"], "kind": alarm["kind"]},
                )
                cleared += 1
        for row in due:
            alarm_id = await repo.raise_alarm(conn, row)
            if alarm_id is None:
                continue
            raised += 1
            data: dict[str, Any] = {
                "alarm_id": alarm_id,
                "kind": row["kind"],
                "message": row["message"],
            }
            if row["kind"] == "ack_timeout":
                # Two-phase dispatch: the unit never acknowledged, so offer the next one.
                data["next_recommendation"] = await _next_unit(
                    conn, state, row["incident_id"], row["unit_id"]
                )
            await emit(
                conn,
                "alarm.raised",
                TIMER_ACTOR,
                incident_id=row["incident_id"],
                unit_id=row["unit_id"],
                data=data,
            )
    if raised or cleared:
        log.info("timers.checked", raised=raised, cleared=cleared)
    return raised, cleared


async def _next_unit(
    conn: asyncpg.Connection, state: AppState, incident_id: int, silent_unit: int
) -> dict[str, Any] | None:
    rec = await recommendations(conn, state, incident_id, frozenset({silent_unit}))
    best: dict[str, Any] | None = rec["recommended"][0] if rec["recommended"] else None
    return best


async def acknowledge(conn: asyncpg.Connection, alarm_id: int, actor: str) -> dict[str, Any]:
    alarm = await repo.get_alarm(conn, alarm_id)
    if alarm is None:
        raise NotFound(f"alarm {alarm_id} not found")
    if alarm["kind"] in repo.TIMER_KINDS:
        raise Conflict(f"a {alarm['kind']} alarm clears itself when its condition ends")
    if alarm["cleared_at"] is not None:
        raise Conflict(f"already acknowledged by {alarm['cleared_by']}")
    done = await repo.acknowledge_alarm(conn, alarm_id, actor)
    await append_event(
        conn, "alarm.cleared", actor, incident_id=alarm["incident_id"], unit_id=alarm["unit_id"],
        data={"alarm_id": alarm_id, "kind": alarm["kind"], "acknowledged_by": actor},
    )  # fmt: skip
    return dict(done)
