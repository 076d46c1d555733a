from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cad.http import Out
from cad.places.schemas import Lat, Lng

MarkerText = Annotated[str, Field(min_length=3, max_length=2000)]
Category = Annotated[str, Field(min_length=1, max_length=64)]
Radius = Annotated[int, Field(ge=1, le=1000)]


def _aware(v: datetime | None) -> datetime | None:
    if v is not None and v.tzinfo is None:
        raise ValueError("must include a timezone (e.g. 2027-01-31T00:00:00Z)")
    return v


class MarkerIn(BaseModel):
    """A marker attaches to exactly one of: a point with a radius, a postcode, a phone."""

    model_config = ConfigDict(extra="forbid")
    category: Category
    text: MarkerText
    lat: Lat | None = None
    lng: Lng | None = None
    radius_m: Radius | None = None
    postcode: Annotated[str, Field(min_length=5, max_length=10)] | None = None
    phone: Annotated[str, Field(max_length=40, pattern=r"^[0-9 +()\-]*$")] | None = None
    review_at: date
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _expiry_aware(cls, v: datetime | None) -> datetime | None:
        return _aware(v)

    @model_validator(mode="after")
    def _one_anchor(self) -> MarkerIn:
        point = self.lat is not None or self.lng is not None or self.radius_m is not None
        if point and (self.lat is None or self.lng is None or self.radius_m is None):
            raise ValueError("a point marker needs lat, lng and radius_m")
        anchors = [point, self.postcode is not None, self.phone is not None]
        if sum(anchors) != 1:
            raise ValueError(
                "attach the marker to exactly one of: lat+lng+radius_m, postcode, phone"
            )
        return self


class MarkerPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: Category | None = None
    text: MarkerText | None = None
    radius_m: Radius | None = None
    review_at: date | None = None
    # Present and null clears the expiry; absent leaves it.
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _expiry_aware(cls, v: datetime | None) -> datetime | None:
        return _aware(v)

    @model_validator(mode="after")
    def _something(self) -> MarkerPatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change")
        for name in ("category", "text", "review_at", "radius_m"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


# -- response bodies --------------------------------------------------------------------
# Rendered by orjson straight from the services' dicts (cad/http.py): these models are the
# contract openapi.json states and the suite checks every response against. MarkerOut and
# MatchedMarkerOut are also what intake and incident bodies carry (calls, incidents, units).

# cad/markers/catalogue.py SEVERITIES, most severe first.
Severity = Literal["high", "medium", "low"]
MarkerMatch = Literal["location", "postcode", "phone"]


class MarkerCategoryOut(Out):
    code: str
    name: str
    severity: Severity
    officer_safety: bool = Field(description="a warning for officers attending")
    description: str


class MarkerOut(Out):
    """A warning marker. It is attached to exactly one of: a point with `radius_m`
    (lat, lng, radius_m set), a `postcode`, or a `phone`; the other anchors are null."""

    id: int
    category: str = Field(description="a category code (GET /api/marker-categories)")
    category_name: str = Field(description="the category's name (its code if unknown)")
    severity: Severity = Field(description="the category's")
    officer_safety: bool = Field(description="the category's")
    text: str
    lat: float | None
    lng: float | None
    radius_m: int | None
    postcode: str | None
    phone: str | None = Field(description="the number as it was entered")
    author: str = Field(description='who created it, "role:username"')
    created_at: datetime
    updated_at: datetime
    updated_by: str
    review_at: date
    expires_at: datetime | None = Field(description="null: never expires")
    active: bool = Field(
        description="not expired when read; in a recorded snapshot, when it was matched"
    )


class MatchedMarkerOut(MarkerOut):
    """A marker that applies to a call's place or caller, as it was when matched: what
    intake showed and what is recorded on the incident (later edits do not change it)."""

    match: MarkerMatch = Field(
        description="what it matched on: the call's point in its circle, the call's "
        "postcode, or the caller's phone"
    )


class MarkerListOut(Out):
    markers: list[MatchedMarkerOut | MarkerOut] = Field(
        description="with incident_id: the markers recorded on the incident (each with "
        "`match`), most severe first; otherwise markers by anchor or category (without "
        "`match`), newest first"
    )
