from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from cad.http import Out
from cad.places.schemas import Lat, Lng


class EmergencyIn(BaseModel):
    """The press. The device's own fix, when it has one, is fresher than the last position
    report the server holds."""

    model_config = ConfigDict(extra="forbid")
    pressed_at: AwareDatetime | None = None
    lat: Lat | None = None
    lng: Lng | None = None
    position_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> EmergencyIn:
        if (self.lat is None) != (self.lng is None):
            raise ValueError("give both lat and lng, or neither")
        return self


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class SentUnitOut(Out):
    unit_id: int
    callsign: str
    diverted: bool = Field(description="taken from a lower-grade job")


class EmergencyOut(Out):
    emergency_id: int
    incident_id: int
    ref: str
    unit_id: int
    callsign: str
    pressed_by: str
    pressed_at: datetime
    received_at: datetime
    lat: float
    lng: float
    position_age_s: int | None = Field(description="age of the position at the press")
    assigned: list[SentUnitOut] = Field(description="units sent to help, nearest first")
    shortfall: int = Field(description="units still wanted; the engine keeps looking")
    alarm_id: int | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    already_open: bool = Field(description="a second press: this is the emergency it found")
