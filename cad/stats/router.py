from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from cad.deps import StateDep, Supervisor, tx
from cad.http import JSON, returns
from cad.stats import repository as repo
from cad.stats import service
from cad.stats.schemas import StatsOut

router = APIRouter(prefix="/api/stats", tags=["stats"])


@router.get("", response_class=JSON, responses=returns(StatsOut))
async def stats(
    state: StateDep, _: Supervisor, hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24
) -> Any:
    now = datetime.now(UTC)
    since = now - timedelta(hours=hours)
    async with tx(state) as conn:
        incidents = await repo.incidents_since(conn, since)
        calls = await repo.calls_since(conn, since)
        units = await repo.units_by_status(conn)
        pending = await repo.pending_count(conn)
    targets = {code: g.target_s for code, g in state.scheme.items()}
    return {
        "since": since.isoformat(),
        "until": now.isoformat(),
        "grades": service.response_kpis(incidents, targets),
        "answering": service.answer_kpis(calls),
        "pending_queue": pending,
        "units_by_status": units,
        "calls_per_15min": service.per_quarter_hour(
            calls, max(since, now - timedelta(hours=24)), now
        ),
        "cleaning": {
            "min_response_s": service.MIN_RESPONSE_S,
            "max_response_s": service.MAX_RESPONSE_S,
        },
    }
