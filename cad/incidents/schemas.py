from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from cad.catalogue.schemas import GradeCode, sometimes
from cad.events.schemas import EventOut
from cad.http import Out
from cad.markers.schemas import MatchedMarkerOut
from cad.search.schemas import HistoryOut
from dispatch.status import AssignmentStatus, IncidentStatus, UnitStatus

Reason = Annotated[str, Field(min_length=3, max_length=1000)]


class RegradeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grade: Annotated[str, Field(pattern=r"^[A-Z]$")]
    reason: Reason


class RemarkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    pressed_at: AwareDatetime | None = Field(
        default=None,
        description="when it was written, for a remark sent late (offline); not in the future",
    )


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    result_code: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{1,31}$")]
    remarks: Annotated[str, Field(max_length=4000)] = ""


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: Annotated[int, Field(gt=0, lt=2**62)]
    divert: bool = Field(default=False, description="take the unit off a lower-grade job")


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into_id: Annotated[int, Field(gt=0, lt=2**62)]
    reason: Reason


class ReopenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


# -- response bodies --------------------------------------------------------------------
# Rendered by orjson straight from the services' dicts (cad/http.py); these models are the
# contract openapi.json states and the suite checks every response against.


# The calls table's CHECK: how a call ended.
CallOutcome = Literal["incident_created", "attached", "advice", "hoax", "accidental", "other"]


class IncidentOut(Out):
    """An incident as recorded, with the names of its type, grade, area and ward."""

    id: int
    ref: str = Field(description='the control-room reference, e.g. "CAD 1234/26NOV26"')
    type_code: str
    type_name: str
    grade: GradeCode
    grade_name: str
    grade_rule: str = Field(description="the rule that set the grade, or 'manual' after a regrade")
    status: IncidentStatus
    lat: float
    lng: float
    address: str | None = Field(description="the address as the handler typed it")
    location_label: str | None = Field(description="what the typed address resolved to")
    precision_m: int | None = Field(description="how precise the resolved place is")
    address_line: str | None = Field(description="the readable place line consoles show")
    postcode: str | None = Field(description="the resolved postcode, else the nearest one")
    area_code: str | None
    area: str | None = Field(description="the response area's name (its code if unknown)")
    ward_code: str | None
    ward: str | None = Field(description="the ward's name (its code if unknown)")
    description: str
    risk: dict[str, Any] = Field(description="the risk answers given (Risk), defaults left out")
    call_received_at: datetime
    call_answered_at: datetime
    created_at: datetime
    target_at: datetime | None = Field(description="attendance target; null for grades without")
    first_assigned_at: datetime | None
    first_on_scene_at: datetime | None
    closed_at: datetime | None
    result_code: str | None
    merged_into: int | None = Field(description="the incident this one was merged into")
    updated_at: datetime


class IncidentRowOut(IncidentOut):
    """A row of the incident list and the open board."""

    call_count: int
    units: list[str] = Field(description="callsigns of the units on it now, in assignment order")


class StatusCountsOut(Out):
    pending: int
    dispatched: int
    on_scene: int


class OpenSummaryOut(Out):
    open: int
    by_grade: dict[str, int] = Field(description="grade code -> open incidents (grades with any)")
    by_status: StatusCountsOut
    breached: int = Field(description="open incidents past their target with no unit on scene")


class OpenBoardPageOut(Out):
    incidents: list[IncidentRowOut]
    next_after_id: int | None = Field(description="after_id of the next page; null on the last")
    counts: OpenSummaryOut | SkipJsonSchema[None] = sometimes("on the first page only")


class IncidentCallOut(Out):
    """A call on an incident, as recorded."""

    id: int
    outcome: CallOutcome
    caller_name: str | None
    caller_phone: str | None
    location_source: str = Field(description="aml | map | address | caller")
    lat: float
    lng: float
    address: str | None
    location_label: str | None
    precision_m: int | None
    area_code: str | None
    ward_code: str | None
    postcode: str | None
    type_code: str
    description: str
    risk: dict[str, Any]
    received_at: datetime
    answered_at: datetime
    created_at: datetime
    handler_id: int | None = Field(description="the user who took the call")


class IncidentAssignmentOut(Out):
    """A unit sent to the incident, current or past, with the times of each step."""

    id: int
    unit_id: int
    callsign: str
    unit_type: str
    status: AssignmentStatus
    auto: bool = Field(description="made by auto-dispatch, not a dispatcher")
    assigned_by: str
    dispatched_at: datetime
    acknowledged_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    cleared_at: datetime | None
    cleared_reason: str | None


class IncidentDetailOut(IncidentOut):
    calls: list[IncidentCallOut]
    assignments: list[IncidentAssignmentOut]
    timeline: list[EventOut]
    markers: list[MatchedMarkerOut] = Field(description="markers recorded on it, most severe first")
    history: HistoryOut = Field(description="history as it stood when the incident was created")


class NeedOut(Out):
    capability: str
    count: int


class CandidateOut(Out):
    """A unit that could go, and how soon."""

    unit_id: int
    callsign: str
    unit_type: str
    capabilities: list[str]
    status: UnitStatus
    eta_s: int
    distance_m: int
    fills: str | None = Field(description="the capability it is proposed for; null if spare")
    label: str = Field(description='"available", "divert from grade E job", …')
    position_age_s: int | None
    divert_from: int | None = Field(description="the incident it would be diverted from")


class RecommendationsOut(Out):
    incident_id: int
    ref: str
    plan: list[NeedOut] = Field(description="what the incident type asks for")
    needs: list[NeedOut] = Field(description="what is still to fill")
    recommended: list[CandidateOut]
    alternatives: list[CandidateOut]
    recommendations: list[CandidateOut] = Field(description="recommended, then alternatives")
    shortfalls: list[str]
    complete: bool = Field(description="every need is filled")


class AssignedOut(Out):
    assignment_id: int
    incident_id: int
    unit_id: int
    callsign: str
    dispatched_at: datetime
    incident_status: IncidentStatus


class IncidentExportOut(Out):
    format: Literal["cad999.incident-export/1"]
    exported_at: datetime
    incident: IncidentDetailOut
