"""GET /api/places (type-ahead) and /api/places/reverse (nearest postcode, ward, borough).

Open to units as well as staff: a unit terminal shows where its job is in the same words.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
from fastapi import APIRouter

from cad.db.pool import DB_DOWN_OR_SLOW
from cad.deps import AnyUser, StateDep
from cad.errors import Unavailable
from cad.http import JSON, returns
from cad.places import service
from cad.places.schemas import Lat, Limit, Lng, PlaceHitOut, ReverseOut, SearchText

if TYPE_CHECKING:
    from cad.state import AppState

router = APIRouter(prefix="/api/places", tags=["places"])


@asynccontextmanager
async def _reading(state: AppState) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection with no transaction: these routes only read, and a type-ahead
    keystroke should not pay BEGIN and COMMIT round trips on top of its one query."""
    try:
        async with state.pool.acquire(timeout=state.settings.db_acquire_timeout_s) as conn:
            yield conn
    except DB_DOWN_OR_SLOW as exc:
        raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc


@router.get("", response_class=JSON, responses=returns(list[PlaceHitOut]))
async def places(state: StateDep, _: AnyUser, q: SearchText, limit: Limit = 10) -> Any:
    """Postcodes in any case or spacing, partial postcodes (their units in order), and
    place names, typo-tolerant."""
    async with _reading(state) as conn:
        return await service.search(conn, state, q, limit)


@router.get("/reverse", response_class=JSON, responses=returns(ReverseOut))
async def reverse(state: StateDep, _: AnyUser, lat: Lat, lng: Lng) -> Any:
    async with _reading(state) as conn:
        return await service.reverse(conn, state, lat, lng)
