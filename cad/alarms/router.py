from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cad.alarms import repository as repo
from cad.alarms import service
from cad.alarms.schemas import AcknowledgedAlarmOut, AlarmOut
from cad.deps import Dispatcher, IdPath, Staff, StateDep, tx
from cad.http import JSON, returns

router = APIRouter(prefix="/api/alarms", tags=["alarms"])


@router.get("", response_class=JSON, responses=returns(list[AlarmOut]))
async def list_alarms(state: StateDep, _: Staff) -> Any:
    """Open alarms, oldest first."""
    async with tx(state) as conn:
        rows = await repo.open_alarms(conn)
    return [{**dict(r), "raised_at": r["raised_at"].isoformat()} for r in rows]


@router.post(
    "/{alarm_id}/acknowledge", response_class=JSON, responses=returns(AcknowledgedAlarmOut)
)
async def acknowledge(alarm_id: IdPath, state: StateDep, principal: Dispatcher) -> Any:
    """A person takes an alarm that waits for one (an officer's emergency): it closes on
    every console, with who took it. Timer alarms clear themselves (409)."""
    async with tx(state) as conn:
        return await service.acknowledge(conn, alarm_id, principal.actor)
