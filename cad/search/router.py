from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from cad.deps import Staff, StateDep, tx
from cad.http import JSON, returns
from cad.search import service
from cad.search.schemas import Codes, Cursor, Near, Q, SearchOut, parse_near, split_codes

router = APIRouter(prefix="/api/search", tags=["search"])


@router.get("", response_class=JSON, responses=returns(SearchOut))
async def search(
    state: StateDep,
    _: Staff,
    q: Q = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    grade: Codes = None,
    type: Codes = None,
    status: Codes = None,
    area: Annotated[str | None, Query(max_length=100)] = None,
    ward: Annotated[str | None, Query(max_length=100)] = None,
    unit: Annotated[str | None, Query(max_length=32)] = None,
    phone: Annotated[str | None, Query(max_length=40, pattern=r"^[0-9 +()\-]*$")] = None,
    postcode: Annotated[str | None, Query(min_length=2, max_length=10)] = None,
    near: Near = None,
    sort: Literal["relevance", "recent"] | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor = None,
) -> Any:
    """Incidents, their calls and remarks: free text (ranked, with highlighted snippets)
    and filters, in stable keyset pages. A reference in any form finds its incident."""
    async with tx(state) as conn:
        filters = await service.build_filters(
            conn,
            state,
            text=None,
            created_from=from_,
            created_to=to,
            grades=split_codes(grade),
            types=split_codes(type),
            status=split_codes(status),
            area=area,
            ward=ward,
            unit=unit,
            phone=phone,
            postcode=postcode,
            near=parse_near(near) if near is not None else None,
        )
        return await service.search(conn, state, q, filters, sort, limit, cursor)
