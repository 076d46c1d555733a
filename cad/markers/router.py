from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from cad.auth.security import Role
from cad.deps import AnyUser, IdPath, StateDep, Supervisor, tx
from cad.errors import Forbidden, Invalid
from cad.http import JSON, returns
from cad.markers import service
from cad.markers.schemas import (
    MarkerCategoryOut,
    MarkerIn,
    MarkerListOut,
    MarkerOut,
    MarkerPatch,
)
from cad.search.schemas import parse_near
from cad.units import service as units_service

router = APIRouter(tags=["markers"])


@router.get(
    "/api/marker-categories", response_class=JSON, responses=returns(list[MarkerCategoryOut])
)
async def categories(state: StateDep, _: AnyUser) -> Any:
    """The marker catalogue (data: cad/markers/categories.json)."""
    return [c.as_dict() for c in state.marker_categories.values()]


@router.get("/api/markers", response_class=JSON, responses=returns(MarkerListOut))
async def list_markers(
    state: StateDep,
    principal: AnyUser,
    incident_id: Annotated[int | None, Query(gt=0, lt=2**62)] = None,
    near: Annotated[str | None, Query(max_length=80)] = None,
    postcode: Annotated[str | None, Query(min_length=5, max_length=10)] = None,
    phone: Annotated[str | None, Query(max_length=40, pattern=r"^[0-9 +()\-]*$")] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    include_expired: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """Markers recorded on an incident (``incident_id``: what was shown, as it was), or
    markers by place, phone or category. A unit sees only its own job's."""
    async with tx(state) as conn:
        if incident_id is not None:
            if principal.role is Role.UNIT and not await units_service.unit_has_incident(
                conn, principal.unit_id, incident_id
            ):
                raise Forbidden("a unit may only see the markers of its own job")
            return {"markers": await service.for_incident(conn, incident_id)}
        if principal.role is Role.UNIT:
            raise Forbidden("a unit may only see the markers of its own job (incident_id)")
        if phone is not None and not any(ch.isdigit() for ch in phone):
            raise Invalid("phone", "needs digits")
        markers = await service.search(
            conn,
            state,
            category=category,
            postcode=postcode,
            phone=phone,
            near=parse_near(near) if near is not None else None,
            include_expired=include_expired,
            limit=limit,
        )
        return {"markers": markers}


@router.get("/api/markers/{marker_id}", response_class=JSON, responses=returns(MarkerOut))
async def get_marker(marker_id: IdPath, state: StateDep, principal: AnyUser) -> Any:
    if principal.role is Role.UNIT:
        raise Forbidden("a unit may only see the markers of its own job (incident_id)")
    async with tx(state) as conn:
        return await service.get(conn, state, marker_id)


@router.post(
    "/api/markers", status_code=201, response_class=JSON, responses=returns(MarkerOut, 201)
)
async def create_marker(body: MarkerIn, state: StateDep, principal: Supervisor) -> Any:
    async with tx(state) as conn:
        return await service.create(conn, state, body, principal.actor)


@router.patch("/api/markers/{marker_id}", response_class=JSON, responses=returns(MarkerOut))
async def update_marker(
    marker_id: IdPath, body: MarkerPatch, state: StateDep, principal: Supervisor
) -> Any:
    async with tx(state) as conn:
        return await service.update(conn, state, marker_id, body, principal.actor)
