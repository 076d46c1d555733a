from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query

from cad.areas.service import desk_areas
from cad.auth.security import Principal, Role
from cad.deps import AnyUser, IdPath, Staff, StateDep, UnitOrDispatcher, require, tx
from cad.emergency import service as emergency_service
from cad.errors import Forbidden, Invalid
from cad.events.writer import append_event
from cad.http import JSON, returns
from cad.idempotency import service as idempotency
from cad.units import service
from cad.units.schemas import (
    AcknowledgedOut,
    AcknowledgeIn,
    MeOut,
    Positions,
    PositionsAcceptedOut,
    StatusChangeOut,
    StatusIn,
    UnitRowOut,
)
from dispatch import repository as dispatch_repo
from dispatch import service as dispatch_service

router = APIRouter(prefix="/api/units", tags=["units"])

PositionReporter = Annotated[
    Principal, Depends(require(Role.UNIT, Role.DISPATCHER, Role.SUPERVISOR))
]


@router.get("", response_class=JSON, responses=returns(list[UnitRowOut]))
async def list_units(
    state: StateDep,
    _: Staff,
    status: Annotated[
        str | None,
        Query(pattern=r"^(off_duty|available|dispatched|en_route|on_scene|unavailable)$"),
    ] = None,
    areas: Annotated[
        str | None,
        Query(
            max_length=2000,
            description="A desk's boroughs, comma-separated area codes: units based there, "
            "on a job there, or based nowhere. Absent: all.",
        ),
    ] = None,
) -> Any:
    desk = desk_areas(state.areas, areas)
    async with tx(state) as conn:
        rows = await dispatch_repo.list_units(conn, status, desk)
    return [service.unit_out(r, state) for r in rows]


@router.get("/me", response_class=JSON, responses=returns(MeOut))
async def me(state: StateDep, principal: AnyUser) -> Any:
    """A unit's own status and current job (the unit terminal's view)."""
    if principal.unit_id is None:
        raise Invalid("token", "this user is not bound to a unit")
    async with tx(state) as conn:
        out = await service.me(conn, state, principal.unit_id)
        out["emergency"] = await emergency_service.current(conn, principal.unit_id)
    return out


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


@router.post("/{unit_id}/status", response_class=JSON, responses=returns(StatusChangeOut))
async def set_status(
    unit_id: IdPath,
    body: StatusIn,
    state: StateDep,
    principal: UnitOrDispatcher,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Move a unit. With ``Idempotency-Key`` a resend (a unit app's offline queue) is
    answered with the first answer and changes nothing; ``pressed_at`` keeps the time the
    officer pressed the button."""
    if principal.role is Role.UNIT and principal.unit_id != unit_id:
        raise Forbidden("a unit may only change its own status")

    async def command() -> tuple[int, Any]:
        return 200, await service.set_status(
            conn, state, unit_id, body.status, body.incident_id, principal.actor,
            pressed_at=body.pressed_at,
        )  # fmt: skip

    async with tx(state) as conn:
        return await idempotency.once(
            conn, principal.user_id, idempotency_key, f"POST /api/units/{unit_id}/status",
            body.model_dump(mode="json"), command,
        )  # fmt: skip


@router.post("/{unit_id}/acknowledge", response_class=JSON, responses=returns(AcknowledgedOut))
async def acknowledge(
    unit_id: IdPath,
    body: AcknowledgeIn,
    state: StateDep,
    principal: UnitOrDispatcher,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """The officer has seen the job (phase two of a dispatch): stops the acknowledgement
    alarm. 409 when the unit no longer holds that assignment."""
    if principal.role is Role.UNIT and principal.unit_id != unit_id:
        raise Forbidden("a unit may only acknowledge its own jobs")

    async def command() -> tuple[int, Any]:
        return 200, await dispatch_service.acknowledge(
            conn, append_event, unit_id, body.assignment_id, principal.actor,
            pressed_at=body.pressed_at,
        )  # fmt: skip

    async with tx(state) as conn:
        return await idempotency.once(
            conn, principal.user_id, idempotency_key, f"POST /api/units/{unit_id}/acknowledge",
            body.model_dump(mode="json"), command,
        )  # fmt: skip


@router.post(
    "/positions",
    status_code=202,
    response_class=JSON,
    responses=returns(PositionsAcceptedOut, 202),
)
async def positions(body: Positions, state: StateDep, principal: PositionReporter) -> Any:
    own = principal.unit_id if principal.role is Role.UNIT else None
    async with tx(state) as conn:
        applied = await service.record_positions(conn, state, body, own)
    if state.fleet is not None and applied:
        await state.fleet.publish_positions(applied)
    return {"received": len(body), "applied": len(applied)}
