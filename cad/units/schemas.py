from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dispatch.status import UnitStatus


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: UnitStatus
    incident_id: Annotated[int, Field(gt=0, lt=2**62)] | None = Field(
        default=None, description="the job this status is about; refused if it is not the unit's"
    )


class PositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: Annotated[int, Field(gt=0, lt=2**62)]
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lng: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    at: datetime | None = None

    @field_validator("lat", "lng")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @field_validator("at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must include a timezone")
        return v


Positions = Annotated[list[PositionIn], Field(min_length=1, max_length=5000)]
