from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

Text = Annotated[str, Field(max_length=4000)]


class LocationSource(StrEnum):
    AML = "aml"  # handset-derived (Advanced Mobile Location)
    MAP = "map"
    ADDRESS = "address"
    CALLER = "caller"  # coordinates read out by the caller


class Caller(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=200)] = ""
    phone: Annotated[str, Field(max_length=40, pattern=r"^[0-9 +()\-]*$")] = ""


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # allow_inf_nan=False: NaN fails every range comparison, so without it the reason
    # given was "should be less than or equal to 180", which misleads the handler.
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    lng: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None
    address: Annotated[str, Field(min_length=2, max_length=300)] | None = None

    @field_validator("lat", "lng")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @model_validator(mode="after")
    def _one_way(self) -> Location:
        has_point = self.lat is not None or self.lng is not None
        if has_point and (self.lat is None or self.lng is None):
            raise ValueError("give both lat and lng, or an address")
        if not has_point and not self.address:
            raise ValueError("give lat and lng, or an address")
        return self


class Risk(BaseModel):
    """The handler's risk questions; THRIVE-style threat / harm / risk levels."""

    model_config = ConfigDict(extra="forbid")
    weapons: bool = False
    injuries: bool = False
    offender_present: bool = False
    ongoing: bool = False
    vulnerable: bool = False
    offender_detained: bool = False
    evidence_at_risk: bool = False
    hate_motivated: bool = False
    threat: Literal["low", "medium", "high"] | None = None
    harm: Literal["low", "medium", "high"] | None = None
    risk: Literal["low", "medium", "high"] | None = None


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    caller: Caller = Field(default_factory=Caller)
    # Before location: location's check reads it.
    link_to: Annotated[int, Field(gt=0, lt=2**62)] | None = None
    # Optional only with link_to: the call then takes the incident's place.
    location: Location | None = Field(default=None, validate_default=True)
    location_source: LocationSource = LocationSource.AML
    incident_type: Annotated[str, Field(min_length=1, max_length=64)]
    description: Text = ""
    risk: Risk = Field(default_factory=Risk)
    received_at: datetime | None = None
    answered_at: datetime | None = None
    outcome: Literal["advice", "hoax", "accidental", "other"] | None = Field(
        default=None, description="end the call without an incident (no link_to)"
    )

    @field_validator("received_at", "answered_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must include a timezone (e.g. 2026-11-26T10:00:00Z)")
        return v

    # Field validators, not a model validator, so the 422 names the field at fault rather
    # than "body". Fields validate in declaration order: link_to and received_at are in
    # info.data by now (absent if they themselves failed).
    @field_validator("answered_at")
    @classmethod
    def _after_received(cls, v: datetime | None, info: ValidationInfo) -> datetime | None:
        received = info.data.get("received_at")
        if v is not None and received is not None and v < received:
            raise ValueError("answered_at is before received_at")
        return v

    @field_validator("outcome")
    @classmethod
    def _not_linked(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v and info.data.get("link_to"):
            raise ValueError("a call is either linked to an incident or ends with an outcome")
        return v

    @field_validator("location")
    @classmethod
    def _located(cls, v: Location | None, info: ValidationInfo) -> Location | None:
        if v is None and info.data.get("link_to") is None:
            raise ValueError("give lat and lng, or an address (or link_to an incident)")
        return v


class GradePreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Without a type: no grade yet, but the place's and the caller's history, markers and
    # duplicates, which a handler needs from the first seconds of the call.
    incident_type: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    risk: Risk = Field(default_factory=Risk)
    location: Location | None = None
    # With a phone the preview also shows that caller's recent calls and markers.
    caller: Caller | None = None


CallOut = dict[str, Any]
