"""Dispatch policies: which of the ranked candidates for a need to send (pure).

``recommend`` ranks the available units for each need by ETA; a policy may then prefer
one a little further down the list. Nearest-by-ETA takes the head of the list, as the
engine always has. Own-area-first is the station-ground rule: the incident's own
borough's unit, unless another is more than ``margin_s`` faster. Coverage-aware, for
grades below the most urgent, leaves a borough its last available unit of the needed
capability when another unit at most ``margin_s`` slower exists.

The engine's ``plan_actions`` runs these (keyword ``policy``); the study compares them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from dispatch.model import Candidate, Need, Recommendation, UnitState
from dispatch.status import UnitStatus

# How many candidates past those needed a non-nearest policy looks at, per need.
POOL_EXTRA = 5
DEFAULT_MARGIN_S = 120

# Available units per (area code, capability).
Spare = dict[tuple[str, str], int]


class Policy(StrEnum):
    NEAREST = "nearest"
    OWN_AREA = "own_area"
    COVERAGE = "coverage"


def count_spare(units: Iterable[UnitState]) -> Spare:
    spare: Spare = {}
    for unit in units:
        if unit.status is UnitStatus.AVAILABLE and unit.area_code is not None:
            for cap in unit.capabilities:
                key = (unit.area_code, cap)
                spare[key] = spare.get(key, 0) + 1
    return spare


def take(spare: Spare, area: str | None, capabilities: Iterable[str]) -> None:
    """Count a unit of ``area`` as no longer available."""
    if area is None:
        return
    for cap in capabilities:
        key = (area, cap)
        if spare.get(key, 0) > 0:
            spare[key] -= 1


def pick(
    pool: Sequence[Candidate],
    count: int,
    capability: str,
    *,
    policy: Policy,
    incident_area: str | None,
    area_of: Mapping[int, str | None],
    spare: Spare,
    guard_coverage: bool,
    margin_s: int = DEFAULT_MARGIN_S,
) -> list[Candidate]:
    """Up to ``count`` of ``pool`` (best ETA first) for one need; ``spare`` is updated
    for each unit picked, so later picks see the borough's remaining cover."""
    left = sorted(pool, key=lambda c: c.eta_s)
    out: list[Candidate] = []

    def last_in_area(c: Candidate) -> bool:
        area = area_of.get(c.unit_id)
        return area is not None and spare.get((area, capability), 0) <= 1

    while left and len(out) < count:
        best = left[0]
        choice = best
        within = [c for c in left if c.eta_s - best.eta_s <= margin_s]
        if policy is Policy.OWN_AREA and incident_area is not None:
            if area_of.get(best.unit_id) != incident_area:
                choice = next((c for c in within if area_of.get(c.unit_id) == incident_area), best)
        elif policy is Policy.COVERAGE and guard_coverage and last_in_area(best):
            choice = next((c for c in within if not last_in_area(c)), best)
        out.append(choice)
        left.remove(choice)
        take(spare, area_of.get(choice.unit_id), choice.capabilities)
    return out


def choose(
    rec: Recommendation,
    needs: Sequence[Need],
    *,
    policy: Policy,
    incident_area: str | None,
    area_of: Mapping[int, str | None],
    spare: Spare,
    guard_coverage: bool,
    margin_s: int = DEFAULT_MARGIN_S,
) -> list[Candidate]:
    """The units to send for ``needs`` (in the order recommend filled them, scarce first)
    from a recommendation made with ``POOL_EXTRA`` alternatives."""
    if policy is Policy.NEAREST:
        for c in rec.recommended:
            take(spare, area_of.get(c.unit_id), c.capabilities)
        return list(rec.recommended)
    claimed = {c.unit_id: c.fills for c in rec.recommended}
    picked: set[int] = set()
    out: list[Candidate] = []
    for need in needs:
        cap = need.capability
        pool = [c for c in rec.recommended if c.fills == cap]
        # Alternatives that recommend did not spend on another need.
        pool += [
            dataclasses.replace(c, fills=cap)
            for c in rec.alternatives
            if c.label == "available"
            and cap in c.capabilities
            and c.unit_id not in claimed
            and c.unit_id not in picked
        ]
        chosen = pick(
            pool,
            need.count,
            cap,
            policy=policy,
            incident_area=incident_area,
            area_of=area_of,
            spare=spare,
            guard_coverage=guard_coverage,
            margin_s=margin_s,
        )
        for c in chosen:
            picked.add(c.unit_id)
        out.extend(chosen)
    out.sort(key=lambda c: c.eta_s)
    return out
