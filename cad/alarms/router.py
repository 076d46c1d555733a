from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cad.alarms import repository as repo
from cad.alarms.schemas import AlarmOut
from cad.deps import Staff, StateDep, tx
from cad.http import JSON, returns

router = APIRouter(prefix="/api/alarms", tags=["alarms"])


@router.get("", response_class=JSON, responses=returns(list[AlarmOut]))
async def list_alarms(state: StateDep, _: Staff) -> Any:
    """Open alarms, oldest first."""
    async with tx(state) as conn:
        rows = await repo.open_alarms(conn)
    return [{**dict(r), "raised_at": r["raised_at"].isoformat()} for r in rows]
