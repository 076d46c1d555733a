from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from cad.catalogue.schemas import GradeCode, sometimes
from cad.http import Out
from cad.incidents.schemas import CallOutcome, IncidentOut
from cad.markers.schemas import MatchedMarkerOut
from cad.places.schemas import Lat, Lng
from cad.search.schemas import HistoryOut
from dispatch.status import IncidentStatus

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
    lat: Lat | None = None
    lng: Lng | None = None
    address: Annotated[str, Field(min_length=2, max_length=300)] | None = None

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


# -- response bodies --------------------------------------------------------------------


class RecordedCallOut(Out):
    id: int
    incident_id: int | None = Field(description="null for a call ended with an outcome")
    outcome: CallOutcome
    received_at: datetime
    answered_at: datetime
    created_at: datetime


class GradingOut(Out):
    grade: GradeCode
    rule: str = Field(description="the rule that decided it, or the type's default")
    reason: str


class DuplicateOut(Out):
    """An open incident nearby and recent that this call may be about."""

    id: int
    ref: str
    type_code: str
    grade: GradeCode
    status: IncidentStatus
    distance_m: int
    age_s: int
    score: float = Field(description="likelihood it is the same incident, 0 to 1")
    created_at: datetime


class CallRecordedOut(Out):
    call: RecordedCallOut
    incident: IncidentOut | None = Field(
        description="the new or linked incident; null when the call ended with an outcome"
    )
    grading: GradingOut
    possible_duplicates: list[DuplicateOut] = Field(description="most likely first")
    markers: list[MatchedMarkerOut] = Field(description="markers that apply, most severe first")


class GradePreviewOut(Out):
    """The grading fields are null without an incident type; the place fields and
    possible_duplicates are there only with a location."""

    grade: GradeCode | None
    grade_name: str | None
    rule: str | None
    reason: str | None
    target_s: int | None = Field(description="attendance target in seconds; null if none")
    auto_dispatch: bool | None = Field(description="the engine would dispatch it by itself")
    markers: list[MatchedMarkerOut]
    history: HistoryOut
    lat: float | SkipJsonSchema[None] = sometimes("with a location")
    lng: float | SkipJsonSchema[None] = sometimes("with a location")
    area: str | None = Field(default=None, description="with a location")
    location_label: str | None = Field(default=None, description="what an address resolved to")
    precision_m: int | None = Field(default=None, description="with a location")
    address_line: str | SkipJsonSchema[None] = sometimes("with a location")
    postcode: str | None = Field(default=None, description="with a location")
    possible_duplicates: list[DuplicateOut] | SkipJsonSchema[None] = sometimes(
        "with a location; most likely first"
    )
