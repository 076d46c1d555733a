"""Gazetteer request parameters and the documented answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel

# A postcode, part of one, or a name; at least one visible character.
SearchText = Annotated[str, Query(min_length=1, max_length=100, pattern=r"\S")]
Limit = Annotated[int, Query(ge=1, le=50)]
Lat = Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)]
Lng = Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)]


class CodeName(BaseModel):
    code: str
    name: str


class PlaceHit(BaseModel):
    label: str
    kind: str  # postcode | place | station | borough | ward
    lat: float
    lng: float
    area: CodeName | None
    ward: CodeName | None
    precision_m: int


class NearestPostcode(BaseModel):
    postcode: str
    distance_m: float
    lat: float
    lng: float


class ReverseOut(BaseModel):
    postcode: NearestPostcode | None
    ward: CodeName | None
    area: CodeName | None
    line: str
