from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header

from cad.auth.security import Role
from cad.deps import IdPath, StateDep, UnitOrDispatcher, tx
from cad.emergency import service
from cad.emergency.schemas import CancelIn, EmergencyIn, EmergencyOut
from cad.errors import Forbidden
from cad.http import JSON, returns
from cad.idempotency import service as idempotency

router = APIRouter(prefix="/api/units", tags=["emergency"])


@router.post(
    "/{unit_id}/emergency",
    status_code=201,
    response_class=JSON,
    responses=returns(EmergencyOut, 201, "Raised, or the one already open"),
)
async def raise_emergency(
    unit_id: IdPath,
    body: EmergencyIn,
    state: StateDep,
    principal: UnitOrDispatcher,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    """The officer's emergency button: an I-grade "officer requires urgent assistance"
    incident at the unit's position, the nearest units sent at once
    (CAD_EMERGENCY_UNITS, lower-grade work diverted if need be) and an alarm on every
    dispatcher and supervisor console until one acknowledges it. A unit raises only its
    own; a second press while one is open answers with that one (``already_open``)."""
    if principal.role is Role.UNIT and principal.unit_id != unit_id:
        raise Forbidden("a unit may only raise its own emergency")
    fix = (body.lat, body.lng, body.position_at) if body.lat is not None else None

    async def command() -> tuple[int, Any]:
        created, out = await service.raise_emergency(
            conn,
            state,
            unit_id,
            principal,
            body.pressed_at,
            fix,  # type: ignore[arg-type]
        )
        return 201, {**out, "already_open": not created}

    async with tx(state) as conn:
        return await idempotency.once(
            conn, principal.user_id, idempotency_key, f"POST /api/units/{unit_id}/emergency",
            body.model_dump(mode="json"), command,
        )  # fmt: skip


@router.post("/{unit_id}/emergency/cancel", response_class=JSON, responses=returns(EmergencyOut))
async def cancel_emergency(
    unit_id: IdPath,
    body: CancelIn,
    state: StateDep,
    principal: UnitOrDispatcher,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    """Stand the emergency down, with a reason. Its incident and alarm stay in the record
    (a dispatcher acknowledges the alarm and closes the incident). 409 if none is open;
    with ``Idempotency-Key`` a resend after a lost answer gets the first answer."""
    if principal.role is Role.UNIT and principal.unit_id != unit_id:
        raise Forbidden("a unit may only cancel its own emergency")

    async def command() -> tuple[int, Any]:
        done = await service.cancel(conn, unit_id, principal, body.reason)
        return 200, {**done, "already_open": False}

    async with tx(state) as conn:
        return await idempotency.once(
            conn, principal.user_id, idempotency_key,
            f"POST /api/units/{unit_id}/emergency/cancel", body.model_dump(mode="json"), command,
        )  # fmt: skip
