"""Search and history parameters: parsing of the forms people type (references, near);
and the bodies search and history answer with."""

from __future__ import annotations

import base64
import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import Query
from pydantic import Field

from cad.catalogue.schemas import GradeCode
from cad.errors import Invalid
from cad.http import Out
from dispatch.status import IncidentStatus

Q = Annotated[str | None, Query(max_length=300)]
Codes = Annotated[str | None, Query(max_length=300, pattern=r"^[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*$")]
Near = Annotated[str | None, Query(max_length=80, description="lat,lng,radius_m")]
Cursor = Annotated[str | None, Query(max_length=600)]

MAX_NEAR_RADIUS_M = 5000.0

# "CAD 1234/26NOV26", "cad1234/26nov26", "1234 / 26 Nov 26", "1234/6NOV26".
_REF = re.compile(
    r"^\s*(?:CAD\s*)?(\d{1,7})\s*/\s*(\d{1,2})\s*([A-Z]{3})\s*(\d{2})\s*$", re.IGNORECASE
)
_MONTHS = frozenset(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
)


def parse_reference(text: str) -> str | None:
    """A control-room reference in any reasonable form, as stored ("CAD 1234/26NOV26")."""
    m = _REF.match(text)
    if m is None or m[3].upper() not in _MONTHS:
        return None
    return f"CAD {int(m[1])}/{int(m[2]):02d}{m[3].upper()}{m[4]}"


def parse_near(text: str, field: str = "near") -> tuple[float, float, float]:
    """ "51.5,-0.12,200" -> (lat, lng, radius_m), rounded to 7 places (1 cm): differences
    of such numbers never underflow in PostgreSQL's float arithmetic."""
    parts = text.split(",")
    if len(parts) != 3:
        raise Invalid(field, "expected lat,lng,radius_m")
    try:
        lat, lng, radius = (float(p) for p in parts)
    except ValueError:
        raise Invalid(field, "expected three numbers: lat,lng,radius_m") from None
    if not all(math.isfinite(v) for v in (lat, lng, radius)):
        raise Invalid(field, "must be finite numbers")
    if not -90 <= lat <= 90 or not -180 <= lng <= 180:
        raise Invalid(field, "lat must be within ±90 and lng within ±180")
    if not 1 <= radius <= MAX_NEAR_RADIUS_M:
        raise Invalid(field, f"radius_m must be between 1 and {MAX_NEAR_RADIUS_M:.0f}")
    return round(lat, 7), round(lng, 7), radius


def split_codes(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def decode_cursor(text: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        raise Invalid("cursor", "not a cursor this search returned") from None
    if not isinstance(data, dict):
        raise Invalid("cursor", "not a cursor this search returned")
    return data


# -- response bodies --------------------------------------------------------------------
# Rendered by orjson straight from the services' dicts (cad/http.py): these models are the
# contract openapi.json states and the suite checks every response against. HistoryOut is
# also what the grade preview and the incident detail carry (calls, incidents).


class SnippetPartOut(Out):
    text: str = Field(description="plain text, never markup")
    match: bool = Field(description="a part the query matched: show it highlighted")


class SearchHitOut(Out):
    """An incident that matched, with what a result list shows of it."""

    id: int
    ref: str = Field(description='the control-room reference, e.g. "CAD 1234/26NOV26"')
    type_code: str
    type_name: str
    grade: GradeCode
    grade_name: str
    status: IncidentStatus
    result_code: str | None = Field(description="set once closed")
    area: str | None = Field(description="the borough's name (its code if unknown)")
    ward: str | None = Field(description="the ward's name (its code if unknown)")
    postcode: str | None = Field(description="the resolved postcode, else the nearest one")
    address_line: str | None = Field(description='e.g. "SE1 7PB · Bishop\'s · Lambeth"')
    lat: float
    lng: float
    created_at: datetime
    closed_at: datetime | None
    call_count: int
    units: list[str] = Field(description="callsigns of every unit ever sent, cleared ones too")
    matched: Literal["reference", "text", "filter"] = Field(
        description="how it was found: its reference was typed, the text, or filters alone"
    )
    rank: float | None = Field(description="text relevance (higher is better); null unranked")
    snippet: list[SnippetPartOut] = Field(
        description="with q: what was said, around the matches; else the start of the "
        "first account; empty if nothing was said"
    )


class ReferenceOut(Out):
    id: int
    ref: str


class SearchOut(Out):
    results: list[SearchHitOut]
    next_cursor: str | None = Field(description="`cursor` for the next page; null on the last")
    reference: ReferenceOut | None = Field(
        description="the incident q named by its reference (then the only result)"
    )


class PlaceHistoryItemOut(Out):
    id: int
    ref: str
    type_code: str
    type_name: str
    grade: GradeCode
    status: IncidentStatus
    outcome: str = Field(description="its result code when closed, else its status")
    created_at: datetime
    distance_m: int


class PlaceHistoryOut(Out):
    """Earlier incidents near the place (merged ones left out)."""

    count: int
    capped: bool = Field(description="the lookup stopped at its cap: there may be more")
    radius_m: float
    days: int
    items: list[PlaceHistoryItemOut] = Field(description="the newest few, newest first")


class CallerHistoryItemOut(Out):
    call_id: int
    incident_id: int | None = Field(description="null for a call that made no incident")
    ref: str | None
    type_code: str
    type_name: str
    grade: GradeCode | None
    outcome: str = Field(
        description="the incident's result code when closed, else its status; for a call "
        "without an incident, the call's outcome (advice, hoax, …)"
    )
    created_at: datetime


class CallerHistoryOut(Out):
    """Earlier calls from the same phone."""

    count: int
    capped: bool = Field(description="the lookup stopped at its cap: there may be more")
    days: int
    last_name: str | None = Field(
        description="the name most recently given from this phone: offer it, never fill it"
    )
    items: list[CallerHistoryItemOut] = Field(description="the newest few, newest first")


class HistoryOut(Out):
    """What is known of the place and the caller; a part is null when there was nothing
    to look it up by (no location, or no phone with enough digits)."""

    location: PlaceHistoryOut | None
    caller: CallerHistoryOut | None
    line: str | None = Field(
        description='e.g. "3 previous incidents here; last: Domestic incident, 12 Nov"; '
        "null when none"
    )
    caller_line: str | None = Field(
        description='e.g. "2 calls from this phone in 30 days; last: …"; null when none'
    )
