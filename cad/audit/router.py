from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from cad.audit import service
from cad.audit.schemas import AccessLogOut
from cad.deps import StateDep, Supervisor, tx
from cad.errors import Invalid
from cad.http import JSON, returns

router = APIRouter(tags=["audit"])


@router.get("/api/access-log", response_class=JSON, responses=returns(AccessLogOut))
async def access_log(
    state: StateDep,
    _: Supervisor,
    username: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    action: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: Annotated[int | None, Query(gt=0, lt=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Any:
    """The access audit, newest first: sign-ins (either outcome, with address and user
    agent), sign-outs, lockouts, account administration and reads of exports; by user
    (as actor or as the account acted on), action and time."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise Invalid(name, "give a time zone (e.g. 2026-12-03T09:00:00Z)")
    if since and until and until <= since:
        raise Invalid("until", "must be after since")
    async with tx(state) as conn:
        entries = await service.search(
            conn, username=username, action=action, since=since, until=until,
            before_id=before_id, limit=limit,
        )  # fmt: skip
    next_before = entries[-1]["id"] if len(entries) == limit else None
    return {"entries": entries, "next_before_id": next_before}
