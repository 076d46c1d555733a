from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cad.deps import AnyUser, StateDep
from cad.http import JSON

router = APIRouter(prefix="/api", tags=["catalogue"])


@router.get("/incident-types", response_class=JSON)
async def incident_types(state: StateDep, _: AnyUser) -> Any:
    return [
        {
            "code": t.code,
            "name": t.name,
            "category": t.category,
            "default_grade": t.default_grade,
            "required_capabilities": [
                {"capability": p.capability, "count": p.count} for p in t.response_plan
            ],
            "related": sorted(t.related),
            "on_scene_limit_min": t.on_scene_limit_min,
        }
        for t in state.catalogue.values()
    ]


@router.get("/grades", response_class=JSON)
async def grades(state: StateDep, _: AnyUser) -> Any:
    return [
        {
            "code": g.code,
            "name": g.name,
            "target_s": g.target_s,
            "auto_dispatch": g.code in state.settings.auto_grades,
            "closes_on_creation": g.closes_on_creation,
            "priority": g.priority,
        }
        for g in sorted(state.scheme.values(), key=lambda g: g.priority)
    ]


@router.get("/areas", response_class=JSON)
async def areas(state: StateDep, _: AnyUser) -> Any:
    """Response areas for the consoles' maps (simplified to ~25 m)."""
    if state.areas_geojson is None:
        state.areas_geojson = state.areas.to_geojson(simplify_m=25)
    return state.areas_geojson
