"""Response bodies of the events routes. Rendered by orjson straight from dicts
(cad/http.py): these models are the contract openapi.json states and the suite checks
every response against."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from cad.http import Out


class EventOut(Out):
    """An event of the log, as the WebSocket stream carries it too."""

    seq: int = Field(description="position in the log: commit order, gaps possible")
    at: datetime
    type: str = Field(description="e.g. incident.created, unit.assigned, unit.status")
    incident_id: int | None
    unit_id: int | None
    actor: str = Field(
        description='who did it: "role:username", or "engine:…" for the engine\'s own moves'
    )
    data: dict[str, Any] = Field(description="the event's own fields, by type")
    areas: list[str] | None = Field(
        description="the areas it concerns, as written: its incident's area and its unit's "
        "home area (empty: global); null on events from before these were recorded"
    )
    grade: str | None = Field(
        description="its incident's grade when it was written; null without an incident"
    )


class EventsPageOut(Out):
    events: list[EventOut] = Field(
        description="in seq order, with since < seq <= next_since (seq can have gaps)"
    )
    next_since: int = Field(
        description="where this page ends: every event up to it has committed and is in "
        "this page or an earlier one, so page on with since=next_since"
    )
    last_seq: int = Field(
        description="the head (safe horizon): every event up to it has committed. It may "
        "lie past this page; use it to start from now, not to page"
    )
