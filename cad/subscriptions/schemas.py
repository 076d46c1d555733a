from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cad.catalogue.schemas import GradeCode
from cad.http import Out

Code = Annotated[str, Field(min_length=1, max_length=64)]


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100)]
    url: Annotated[str, Field(min_length=8, max_length=2000)]
    # Shared with the partner: every delivery is signed with it (HMAC-SHA256).
    secret: Annotated[str, Field(min_length=16, max_length=200)]
    areas: list[Code] = Field(default_factory=list, max_length=100,
                              description="area codes; empty: every area")  # fmt: skip
    grades: list[GradeCode] = Field(default_factory=list, description="empty: every grade")
    types: list[Code] = Field(default_factory=list, max_length=100,
                              description="incident type codes; empty: every type")  # fmt: skip

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not (v.startswith("https://") or v.startswith("http://")):
            raise ValueError("must be an http:// or https:// URL")
        return v


class SubscriptionOut(Out):
    id: int
    name: str
    url: str
    areas: list[str]
    grades: list[str]
    types: list[str]
    created_at: datetime
    created_by: str
    ended_at: datetime | None
    delivered: int = Field(description="deliveries the partner has acknowledged (2xx)")
    pending: int = Field(description="changes waiting to be delivered")
    lag_s: float | None = Field(
        description="age of the oldest change not yet delivered; null when none waits"
    )
    events_behind: int = Field(description="events in the log the outbox has not looked at")
    last_delivered_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None


class SubscriptionsOut(Out):
    subscriptions: list[SubscriptionOut]
