from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    lng: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None
    radius_m: Radius | None = None
    postcode: Annotated[str, Field(min_length=5, max_length=10)] | None = None
    phone: Annotated[str, Field(max_length=40, pattern=r"^[0-9 +()\-]*$")] | None = None
    review_at: date
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _expiry_aware(cls, v: datetime | None) -> datetime | None:
        return _aware(v)

    @field_validator("lat", "lng")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

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
