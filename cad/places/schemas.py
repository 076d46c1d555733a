"""Gazetteer request parameters and the documented answers."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query
from pydantic import Field

from cad.http import Out

# A postcode, part of one, or a name; at least one visible character.
SearchText = Annotated[str, Query(min_length=1, max_length=100, pattern=r"\S")]
Limit = Annotated[int, Query(ge=1, le=50)]
# WGS84 degrees. One definition for query parameters and body fields alike (FastAPI reads
# a scalar parameter annotated with Field as a query parameter). allow_inf_nan=False
# refuses NaN and ±Infinity (JSON's NaN, 1e999) before any validator would run.
Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Lng = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]

# postcode, or a named place's kind (the places table's CHECK).
PlaceKind = Literal["postcode", "place", "station", "borough", "ward"]


class CodeNameOut(Out):
    code: str
    name: str


class PlaceHitOut(Out):
    label: str = Field(description='canonical: "SE1 7PB", "Waterloo Station", "Lambeth"')
    kind: PlaceKind
    lat: float
    lng: float
    area: CodeNameOut | None = Field(description="the borough the point lies in")
    ward: CodeNameOut | None = Field(description="the ward the point lies in")
    precision_m: int = Field(description="how far the place may be from the point (m)")


class NearestPostcodeOut(Out):
    postcode: str
    distance_m: float = Field(description="from the point, to 0.1 m")
    lat: float
    lng: float


class ReverseOut(Out):
    postcode: NearestPostcodeOut | None = Field(
        description="the nearest postcode; null if none is within 2 km"
    )
    ward: CodeNameOut | None
    area: CodeNameOut | None
    line: str = Field(description='"near SE1 7PB · Bishop\'s · Lambeth"; empty if nothing is known')
