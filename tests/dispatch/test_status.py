from __future__ import annotations

import pytest

from dispatch.engine import remaining_needs
from dispatch.model import Need
from dispatch.status import (
    UNIT_TRANSITIONS,
    AssignmentStatus,
    IllegalTransition,
    IncidentStatus,
    UnitStatus,
    check_unit_transition,
    derive_incident_status,
)


def test_every_status_has_a_row() -> None:
    assert set(UNIT_TRANSITIONS) == set(UnitStatus)


@pytest.mark.parametrize("current", list(UnitStatus))
@pytest.mark.parametrize("wanted", list(UnitStatus))
def test_transition_table(current: UnitStatus, wanted: UnitStatus) -> None:
    if wanted in UNIT_TRANSITIONS[current]:
        check_unit_transition(current, wanted)
    else:
        with pytest.raises(IllegalTransition) as info:
            check_unit_transition(current, wanted)
        message = str(info.value)
        assert message.startswith(f"expected a move from {current} to one of")
        assert f"got {wanted}" in message
        for allowed in UNIT_TRANSITIONS[current]:
            assert allowed.value in message


def test_dispatched_only_through_assignment() -> None:
    for status in UnitStatus:
        assert UnitStatus.DISPATCHED not in UNIT_TRANSITIONS[status]


def test_incident_status_follows_assignments() -> None:
    A = AssignmentStatus
    assert derive_incident_status([]) is IncidentStatus.PENDING
    assert derive_incident_status([A.CANCELLED]) is IncidentStatus.PENDING
    assert derive_incident_status([A.DISPATCHED]) is IncidentStatus.DISPATCHED
    assert derive_incident_status([A.EN_ROUTE, A.DISPATCHED]) is IncidentStatus.DISPATCHED
    assert derive_incident_status([A.EN_ROUTE, A.ON_SCENE]) is IncidentStatus.ON_SCENE


def test_remaining_needs() -> None:
    plan = [Need("armed", 2), Need("response", 1)]
    armed = frozenset({"armed", "response"})
    car = frozenset({"response"})
    assert remaining_needs(plan, []) == plan
    assert remaining_needs(plan, [armed]) == [Need("armed", 1), Need("response", 1)]
    assert remaining_needs(plan, [armed, armed]) == [Need("response", 1)]
    assert remaining_needs(plan, [armed, armed, car]) == []
    assert remaining_needs(plan, [car, car]) == [Need("armed", 2)]
    # Whatever order the units come in, an armed unit fills the armed place.
    knife = [Need("armed", 1), Need("response", 2)]
    for order in ([armed, car, car], [car, armed, car], [car, car, armed]):
        assert remaining_needs(knife, order) == []
    assert remaining_needs(knife, [armed, car]) == [Need("response", 1)]
