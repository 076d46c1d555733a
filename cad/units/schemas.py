from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from cad.catalogue.schemas import GradeCode, sometimes
from cad.emergency.schemas import EmergencyOut
from cad.http import Out
from cad.incidents.schemas import IncidentOut
from cad.markers.schemas import MatchedMarkerOut
from cad.places.schemas import Lat, Lng
from dispatch.status import AssignmentStatus, IncidentStatus, UnitStatus


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: UnitStatus
    incident_id: Annotated[int, Field(gt=0, lt=2**62)] | None = Field(
        default=None, description="the job this status is about; refused if it is not the unit's"
    )
    pressed_at: AwareDatetime | None = Field(
        default=None,
        description="when the officer pressed it, for a change sent late (queued offline): "
        "becomes the assignment's time; not in the future, not before the dispatch",
    )


class AcknowledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignment_id: Annotated[int, Field(gt=0, lt=2**62)]
    pressed_at: AwareDatetime | None = None


class AcknowledgedOut(Out):
    assignment_id: int
    changed: bool = Field(description="false when it had been acknowledged already")
    acknowledged_at: datetime | None


class PositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: Annotated[int, Field(gt=0, lt=2**62)]
    lat: Lat
    lng: Lng
    at: datetime | None = None

    @field_validator("at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must include a timezone")
        return v


Positions = Annotated[list[PositionIn], Field(min_length=1, max_length=5000)]


# -- response bodies --------------------------------------------------------------------
# Rendered by orjson straight from the services' dicts (cad/http.py); these models are the
# contract openapi.json states and the suite checks every response against.


class UnitOut(Out):
    """A unit as recorded, with the ward (sector) its last position lies in."""

    id: int
    callsign: str
    unit_type: str
    capabilities: list[str]
    home_station: str | None
    area_code: str | None = Field(description="the response area it belongs to")
    status: UnitStatus
    status_at: datetime = Field(description="when it entered its status")
    lat: float | None = Field(description="last reported position; null before the first")
    lng: float | None
    position_at: datetime | None = Field(description="when the last position was taken")
    ward_code: str | None = Field(description="the ward of its last position, if any")
    ward: str | None = Field(description="that ward's name")


class UnitRowOut(UnitOut):
    """A unit of the fleet list, with the job it holds now (all null when it holds none)."""

    incident_id: int | None
    assignment_id: int | None
    incident_grade: GradeCode | None
    incident_ref: str | None


class JobOut(Out):
    assignment_id: int
    assignment_status: Literal["dispatched", "en_route", "on_scene"]
    incident: IncidentOut
    markers: list[MatchedMarkerOut] = Field(description="markers recorded on it, most severe first")
    history_line: str | None = Field(
        description='the place and caller history in a line, e.g. "3 previous incidents here…"'
    )


class MeOut(UnitOut):
    """The unit terminal's view: the signed-in unit and the job it holds."""

    job: JobOut | None = Field(description="null when the unit holds no job")
    emergency: EmergencyOut | None = Field(
        description="the unit's open emergency (its button was pressed), else null"
    )


class StatusChangeOut(Out):
    """The unit's status after the request. A move that changed nothing (already in that
    status) carries only unit_id, status and changed; a real move adds the rest, and the
    assignment and incident keys when the unit held a job."""

    unit_id: int
    status: UnitStatus
    changed: bool
    at: datetime | SkipJsonSchema[None] = sometimes("when it changed")
    callsign: str | SkipJsonSchema[None] = sometimes("only when changed")
    from_: UnitStatus | SkipJsonSchema[None] = sometimes("the status it left", alias="from")
    to: UnitStatus | SkipJsonSchema[None] = sometimes("the status it entered")
    assignment_id: int | SkipJsonSchema[None] = sometimes("the job it held")
    assignment_status: AssignmentStatus | SkipJsonSchema[None] = sometimes(
        "what the assignment became (cleared / cancelled when the unit left it)"
    )
    ref: str | SkipJsonSchema[None] = sometimes("the job's incident reference")
    grade: GradeCode | SkipJsonSchema[None] = sometimes("the job's incident grade")
    incident_status: IncidentStatus | SkipJsonSchema[None] = sometimes(
        "the job's incident status after the move (closed if the last unit cleared)"
    )
    pressed_at: datetime | SkipJsonSchema[None] = sometimes(
        "when the officer pressed it (a late change), recorded with the time received"
    )
    received_at: datetime | SkipJsonSchema[None] = sometimes("when the server received it")


class PositionsAcceptedOut(Out):
    received: int = Field(description="reports in the request")
    applied: int = Field(
        description="reports from units whose stored position moved (a unit's newest report "
        "is stored, unless older than the one held; its other reports count too)"
    )
