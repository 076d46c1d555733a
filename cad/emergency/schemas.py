from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cad.http import Out
from cad.places.schemas import Lat, Lng


def _aware(v: datetime | None) -> datetime | None:
    if v is not None and v.tzinfo is None:
        raise ValueError("must include a timezone (e.g. 2026-11-26T10:00:00Z)")
    return v


class EmergencyIn(BaseModel):
    """The press. The device's own fix, when it has one, is fresher than the last position
    report the server holds."""

    model_config = ConfigDict(extra="forbid")
    pressed_at: datetime | None = None
    lat: Lat | None = None
    lng: Lng | None = None
    position_at: datetime | None = None

    @field_validator("pressed_at", "position_at")
    @classmethod
    def _aware_times(cls, v: datetime | None) -> datetime | None:
        return _aware(v)

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
