"""Response body of the supervisor KPIs. Rendered by orjson straight from dicts
(cad/http.py): this model is the contract openapi.json states and the suite checks every
response against."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from cad.http import Out
from dispatch.status import UnitStatus


class ExcludedReasonsOut(Out):
    """Why attended incidents were left out of the response times; a reason with none is
    absent."""

    out_of_order: int = Field(default=0, description="on scene before it was created")
    under_1_min: int = 0
    over_1_hour: int = 0


class GradeKpiOut(Out):
    """One grade's incidents created in the window (merged ones left out). Response time
    is created → first unit on scene."""

    count: int
    open: int = Field(description="not closed yet")
    attended: int = Field(description="a unit got on scene")
    within_target: int = Field(description="response times counted that met the target")
    excluded: int = Field(description="attended, but left out of the response times")
    excluded_reasons: ExcludedReasonsOut
    response_counted: int = Field(description="response times the figures below are over")
    target_s: int | None = Field(description="the grade's target; null: it has none")
    share_within_target: float | None = Field(
        description="within_target / response_counted, 0..1; null without a target or times"
    )
    median_s: float | None = Field(description="null when no response time was counted")
    p90_s: float | None


class AnsweringOut(Out):
    calls: int = Field(description="calls received in the window (with a sane answer time)")
    answered_within_10s: int
    share_within_10s: float | None = Field(description="0..1; null when there were no calls")
    target_share: float = Field(description="the share the national standard asks for")


class QuarterHourOut(Out):
    at: datetime = Field(description="the quarter hour's start")
    calls: int


class CleaningOut(Out):
    """The bounds outside which a response time is excluded."""

    min_response_s: int
    max_response_s: int


class StatsOut(Out):
    since: datetime
    until: datetime
    grades: dict[str, GradeKpiOut] = Field(
        description="by grade code; only grades with incidents in the window"
    )
    answering: AnsweringOut
    pending_queue: int = Field(description="incidents waiting for a unit now (any age)")
    units_by_status: dict[UnitStatus, int] = Field(
        description="units in each status now; a status no unit is in is absent"
    )
    calls_per_15min: list[QuarterHourOut] = Field(
        description="calls received per quarter hour over the window's last 24 hours at most"
    )
    cleaning: CleaningOut
