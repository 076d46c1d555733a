"""Search and history parameters: parsing of the forms people type (references, near)."""

from __future__ import annotations

import base64
import math
import re
from typing import Annotated, Any

import orjson
from fastapi import Query

from cad.errors import Invalid

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
