"""Response body of the open alarms. Rendered by orjson straight from dicts
(cad/http.py): this model is the contract openapi.json states and the suite checks every
response against."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from cad.http import Out

# The three conditions the safety timers raise (cad/alarms/repository.py), nothing else.
AlarmKind = Literal["target_breached", "ack_timeout", "welfare_check"]


class AlarmOut(Out):
    """An open alarm: a condition that holds now; it clears itself when it stops holding."""

    id: int
    kind: AlarmKind = Field(
        description="target_breached: an I/S incident past its target with no unit on "
        "scene; ack_timeout: a dispatched unit has not acknowledged; welfare_check: a unit "
        "on scene longer than its incident type's limit"
    )
    incident_id: int | None = Field(description="the incident (every kind has one today)")
    unit_id: int | None = Field(description="null for target_breached")
    assignment_id: int | None = Field(description="null for target_breached")
    raised_at: datetime
    message: str = Field(description="a sentence for the console")
