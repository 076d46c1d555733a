from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Reason = Annotated[str, Field(min_length=3, max_length=1000)]


class RegradeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grade: Annotated[str, Field(pattern=r"^[A-Z]$")]
    reason: Reason


class RemarkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=4000)]


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
