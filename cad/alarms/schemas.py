"""Response body of the open alarms. Rendered by orjson straight from dicts
(cad/http.py): this model is the contract openapi.json states and the suite checks every
response against."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from cad.http import Out

# The conditions the safety timers raise and clear themselves (cad/alarms/repository.py),
# and the officer's emergency, which stays until a person acknowledges it.
AlarmKind = Literal["target_breached", "ack_timeout", "welfare_check", "officer_emergency"]


class AlarmOut(Out):
    """An open alarm: a condition that holds now; it clears itself when it stops holding."""

    id: int
    kind: AlarmKind = Field(
        description="target_breached: an I/S incident past its target with no unit on "
        "scene; ack_timeout: a dispatched unit has not acknowledged; welfare_check: a unit "
        "on scene longer than its incident type's limit; officer_emergency: an officer "
        "pressed the emergency button (open until a dispatcher or supervisor acknowledges)"
    )
    incident_id: int | None = Field(description="the incident (every kind has one today)")
    unit_id: int | None = Field(description="null for target_breached")
    assignment_id: int | None = Field(description="null for target_breached")
    raised_at: datetime
    message: str = Field(description="a sentence for the console")
    callsign: str | None = Field(description="the unit's callsign, when a unit is named")
    ref: str | None = Field(description="the incident's reference")


class AcknowledgedAlarmOut(Out):
    id: int
    kind: AlarmKind
    incident_id: int | None
    acknowledged_by: str
    acknowledged_at: datetime
