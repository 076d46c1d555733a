"""Unit and assignment state machines as enums and transition tables (pure)."""

from __future__ import annotations

from enum import StrEnum


class UnitStatus(StrEnum):
    OFF_DUTY = "off_duty"
    AVAILABLE = "available"
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    UNAVAILABLE = "unavailable"


class IncidentStatus(StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    ON_SCENE = "on_scene"
    CLOSED = "closed"


class AssignmentStatus(StrEnum):
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    CLEARED = "cleared"
    CANCELLED = "cancelled"


S = UnitStatus
# DISPATCHED is entered only through an assignment (never by a status button), so that a
# unit can never look committed without the assignment row that says to what.
UNIT_TRANSITIONS: dict[UnitStatus, frozenset[UnitStatus]] = {
    S.OFF_DUTY: frozenset({S.AVAILABLE, S.UNAVAILABLE}),
    S.AVAILABLE: frozenset({S.OFF_DUTY, S.UNAVAILABLE}),
    S.DISPATCHED: frozenset({S.EN_ROUTE, S.ON_SCENE, S.AVAILABLE, S.UNAVAILABLE}),
    S.EN_ROUTE: frozenset({S.ON_SCENE, S.AVAILABLE, S.UNAVAILABLE}),
    S.ON_SCENE: frozenset({S.AVAILABLE, S.UNAVAILABLE}),
    S.UNAVAILABLE: frozenset({S.AVAILABLE, S.OFF_DUTY}),
}

ON_JOB = frozenset({S.DISPATCHED, S.EN_ROUTE, S.ON_SCENE})
OPEN_ASSIGNMENT = frozenset(
    {AssignmentStatus.DISPATCHED, AssignmentStatus.EN_ROUTE, AssignmentStatus.ON_SCENE}
)


class IllegalTransition(ValueError):
    def __init__(self, current: UnitStatus, wanted: UnitStatus) -> None:
        allowed = sorted(UNIT_TRANSITIONS[current])
        hint = (
            " (a unit is dispatched by assigning it to an incident)"
            if wanted is S.DISPATCHED
            else ""
        )
        super().__init__(
            f"expected a move from {current} to one of {', '.join(allowed) or 'nothing'}, "
            f"got {wanted}{hint}"
        )
        self.current = current
        self.wanted = wanted
        self.allowed = allowed


def check_unit_transition(current: UnitStatus, wanted: UnitStatus) -> None:
    if wanted not in UNIT_TRANSITIONS[current]:
        raise IllegalTransition(current, wanted)


def assignment_status_for(unit_status: UnitStatus) -> AssignmentStatus | None:
    """What a unit's open assignment becomes when the unit moves to this status."""
    return {
        S.EN_ROUTE: AssignmentStatus.EN_ROUTE,
        S.ON_SCENE: AssignmentStatus.ON_SCENE,
    }.get(unit_status)


def derive_incident_status(assignment_statuses: list[AssignmentStatus]) -> IncidentStatus:
    """An open incident's status follows from its open assignments."""
    if AssignmentStatus.ON_SCENE in assignment_statuses:
        return IncidentStatus.ON_SCENE
    if any(s in OPEN_ASSIGNMENT for s in assignment_statuses):
        return IncidentStatus.DISPATCHED
    return IncidentStatus.PENDING
