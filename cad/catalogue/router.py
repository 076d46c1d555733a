from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from cad.catalogue.schemas import AreasOut, GradeOut, IncidentTypeOut, MapConfigOut
from cad.deps import AnyUser, StateDep
from cad.errors import Invalid
from cad.http import JSON, returns

router = APIRouter(prefix="/api", tags=["catalogue"])


@router.get("/incident-types", response_class=JSON, responses=returns(list[IncidentTypeOut]))
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


@router.get("/grades", response_class=JSON, responses=returns(list[GradeOut]))
async def grades(state: StateDep, _: AnyUser) -> Any:
    return [
        {
            "code": g.code,
            "name": g.name,
            "target_s": g.target_s,
            "auto_dispatch": state.auto_dispatches(g.code),
            "closes_on_creation": g.closes_on_creation,
            "priority": g.priority,
        }
        for g in sorted(state.scheme.values(), key=lambda g: g.priority)
    ]


@router.get("/map-config", response_class=JSON, responses=returns(MapConfigOut))
async def map_config(state: StateDep, _: AnyUser) -> Any:
    """The consoles' base map: a raster tile layer under the vectors, or none (offline)."""
    s = state.settings
    return {
        "tile_url": s.map_tile_url or None,
        "attribution": s.map_attribution,
        "max_zoom": s.map_max_zoom,
    }


_AREA_LEVELS = ("borough", "ward")
_AREA_SIMPLIFY_M = {"borough": 25.0, "ward": 10.0}


@router.get("/areas", response_class=JSON, responses=returns(AreasOut))
async def areas(state: StateDep, _: AnyUser, level: str = "borough") -> Any:
    """Areas for the consoles' maps as GeoJSON, properties {code, name, parent?}.

    level=borough (default): the response areas, simplified to ~25 m. level=ward: the
    sectors (London's 2014 wards unless imported), ~10 m, each with parent = its borough's
    code; an empty FeatureCollection when the deployment has no ward level.
    """
    if level not in _AREA_LEVELS:
        raise Invalid("level", f"must be one of {', '.join(_AREA_LEVELS)}")
    cached = state.areas_geojson_by_level.get(level)
    if cached is not None:
        return cached
    source = state.areas if level == "borough" else state.wards
    body: dict[str, object] = {"type": "FeatureCollection", "features": []}
    if source is not None:
        # Projecting and simplifying 630 wards takes a moment: off the event loop.
        body = await asyncio.to_thread(source.to_geojson, _AREA_SIMPLIFY_M[level])
    state.areas_geojson_by_level[level] = body
    return body
