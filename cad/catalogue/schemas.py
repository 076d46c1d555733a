"""Response bodies of the catalogue routes, and the grade code other domains' bodies
name. Rendered by orjson straight from dicts (cad/http.py): these models are the contract
openapi.json states and the suite checks every response against."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from cad.grading import CAPABILITIES, load_scheme
from cad.http import Out


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def sometimes(description: str, alias: str | None = None) -> Any:
    """A key only some answers carry, never null when it is there: optional in the
    document, and not advertised as nullable (pair with `T | SkipJsonSchema[None]`)."""
    return Field(default=None, alias=alias, description=description, json_schema_extra=_no_default)


# The scheme file is the one source of grade codes, so the document lists what it holds
# (most urgent first) rather than repeating the letters.
GradeCode = Annotated[
    str,
    Field(
        description="a grade of the scheme (GET /api/grades)",
        json_schema_extra={
            "enum": [g.code for g in sorted(load_scheme().values(), key=lambda g: g.priority)]
        },
    ),
]
# A response plan may only ask for what dispatch can fill (checked when the file loads).
Capability = Annotated[str, Field(json_schema_extra={"enum": sorted(CAPABILITIES)})]


class PlanItemOut(Out):
    capability: Capability
    count: int


class IncidentTypeOut(Out):
    code: str
    name: str
    category: str
    default_grade: GradeCode = Field(description="the grade when no grading rule applies")
    required_capabilities: list[PlanItemOut] = Field(
        description="the response plan: how many units of each capability it needs"
    )
    related: list[str] = Field(
        description="codes of types treated as the same event when looking for duplicates"
    )
    on_scene_limit_min: int = Field(description="minutes on scene before a welfare check alarm")


class GradeOut(Out):
    code: GradeCode
    name: str
    target_s: int | None = Field(description="attendance target from creation; null: none")
    auto_dispatch: bool = Field(description="the engine assigns units to this grade by itself")
    closes_on_creation: bool = Field(description="an incident of this grade closes when made")
    priority: int = Field(description="1 is the most urgent")


class MapConfigOut(Out):
    tile_url: str | None = Field(description="raster tile URL template; null: no base map")
    attribution: str
    max_zoom: int


class AreaPropertiesOut(Out):
    code: str
    name: str
    parent: str | SkipJsonSchema[None] = sometimes("wards only: the code of the borough it lies in")


# [lng, lat] in WGS84, rounded to 5 decimals.
Position = Annotated[list[float], Field(min_length=2, max_length=2)]


class PolygonOut(Out):
    type: Literal["Polygon"]
    coordinates: list[list[Position]] = Field(description="rings: the outer, then holes")


class MultiPolygonOut(Out):
    type: Literal["MultiPolygon"]
    coordinates: list[list[list[Position]]]


class AreaFeatureOut(Out):
    type: Literal["Feature"]
    geometry: Annotated[PolygonOut | MultiPolygonOut, Field(discriminator="type")]
    properties: AreaPropertiesOut


class AreasOut(Out):
    """A GeoJSON FeatureCollection, simplified for drawing (neighbours may gap slightly)."""

    type: Literal["FeatureCollection"]
    features: list[AreaFeatureOut]
