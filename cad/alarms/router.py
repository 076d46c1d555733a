from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cad.alarms import repository as repo
from cad.deps import Staff, StateDep, tx

router = APIRouter(prefix="/api/alarms", tags=["alarms"])


@router.get("")
async def list_alarms(state: StateDep, _: Staff) -> list[dict[str, Any]]:
    async with tx(state) as conn:
        rows = await repo.open_alarms(conn)
    return [{**dict(r), "raised_at": r["raised_at"].isoformat()} for r in rows]
