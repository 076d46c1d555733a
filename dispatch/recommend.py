"""Which units to send: ranked by ETA against the incident's response plan (pure).

For each capability the plan needs, walk that capability's index outwards from the
incident and stop as soon as no unit further out could beat the ones already found: the
ETA model's lower bound at the current distance exceeds the k-th best ETA. That keeps a
query to a handful of units even with 10,000 in the fleet, and the answer equals a brute
force ranking (tested).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from datetime import datetime, timedelta

from dispatch.directory import UnitDirectory
from dispatch.model import Candidate, Need, Recommendation, UnitState
from dispatch.status import UnitStatus
from gis.eta import EtaModel
from gis.spatial import UnitIndex


def _age_s(unit: UnitState, now: datetime) -> int | None:
    if unit.position_at is None:
        return None
    return int((now - unit.position_at).total_seconds())


def ranked(
    index: UnitIndex,
    directory: UnitDirectory,
    x: float,
    y: float,
    k: int,
    eta: EtaModel,
    now: datetime,
    stale_after_s: int,
    exclude: frozenset[int] = frozenset(),
) -> list[tuple[float, float, int]]:
    """The k best (eta_s, distance_m, unit_id) in an index, best first, fresh positions only."""
    if k <= 0:
        return []
    best: list[tuple[float, float, int]] = []  # max-heap on eta via negation
    units = directory.units
    cutoff = now - timedelta(seconds=stale_after_s)

    def accept(unit_id: int) -> bool:
        if unit_id in exclude:
            return False
        at = units[unit_id].position_at
        return at is not None and at >= cutoff

    for unit_id, distance in index.iter_nearest(x, y, accept):
        if len(best) >= k and eta.min_eta_s(distance) > -best[0][0]:
            break
        seconds = eta.eta_s(distance, units[unit_id].unit_type)
        item = (-seconds, distance, unit_id)
        if len(best) < k:
            heapq.heappush(best, item)
        elif seconds < -best[0][0]:
            heapq.heapreplace(best, item)
    return sorted((-e, d, u) for e, d, u in best)


def _candidate(
    unit: UnitState,
    eta_s: float,
    distance: float,
    fills: str | None,
    label: str,
    now: datetime,
    divert_from: int | None = None,
) -> Candidate:
    return Candidate(
        unit_id=unit.id,
        callsign=unit.callsign,
        unit_type=unit.unit_type,
        capabilities=tuple(sorted(unit.capabilities)),
        status=unit.status.value,
        eta_s=round(eta_s),
        distance_m=round(distance),
        fills=fills,
        label=label,
        position_age_s=_age_s(unit, now),
        divert_from=divert_from,
    )


def recommend(
    directory: UnitDirectory,
    lat: float,
    lng: float,
    needs: Sequence[Need],
    eta: EtaModel,
    now: datetime,
    *,
    grade: str | None = None,
    stale_after_s: int = 1800,
    alternatives: int = 3,
    exclude: frozenset[int] = frozenset(),
    include_busy: bool = True,
    explain: bool = True,
) -> Recommendation:
    """Fill each need with the best-ETA available units; explain any shortfall.

    ``explain=False`` (the engine) states a shortfall without counting why, which would
    cost a pass over the whole fleet for every short incident."""
    x, y = directory.projector.to_metres(lat, lng)
    # Without a grade, as for the most urgent: every unit it could take is shown.
    grade = grade or directory.grades.most_urgent
    needs = [n for n in needs if n.count > 0]
    result = Recommendation(needs=list(needs))
    chosen: set[int] = set(exclude)
    # Scarce capabilities first, so a unit with several does not get spent on a common need.
    order = sorted(needs, key=lambda n: len(directory.available.get(n.capability, ())))
    seen_alt: set[int] = set()
    for need in order:
        index = directory.available.get(need.capability)
        found = (
            ranked(
                index,
                directory,
                x,
                y,
                need.count + alternatives,
                eta,
                now,
                stale_after_s,
                frozenset(chosen),
            )
            if index is not None
            else []
        )
        taken = 0
        for eta_s, distance, unit_id in found:
            unit = directory.units[unit_id]
            if taken < need.count:
                result.recommended.append(
                    _candidate(unit, eta_s, distance, need.capability, "available", now)
                )
                chosen.add(unit_id)
                taken += 1
            elif unit_id not in seen_alt:
                seen_alt.add(unit_id)
                result.alternatives.append(
                    _candidate(unit, eta_s, distance, None, "available", now)
                )
        if taken < need.count:
            result.shortfalls.append(
                _shortfall(directory, need, taken, now, stale_after_s, chosen)
                if explain
                else f"{need.count} {need.capability} needed, {taken} available"
            )
            if include_busy:
                result.alternatives.extend(
                    busy_candidates(
                        directory, x, y, need, eta, now, grade, stale_after_s, need.count - taken
                    )
                )
    result.recommended.sort(key=lambda c: c.eta_s)
    result.alternatives.sort(key=lambda c: (c.label != "available", c.eta_s))
    return result


def busy_candidates(
    directory: UnitDirectory,
    x: float,
    y: float,
    need: Need,
    eta: EtaModel,
    now: datetime,
    grade: str,
    stale_after_s: int,
    k: int,
) -> list[Candidate]:
    """Units on other jobs: divertable from lower-grade work, or soon free from the scene."""
    index = directory.busy.get(need.capability)
    if index is None:
        return []
    grades = directory.grades
    out: list[Candidate] = []
    for eta_s, distance, unit_id in ranked(index, directory, x, y, k + 5, eta, now, stale_after_s):
        unit = directory.units[unit_id]
        if unit.status is not UnitStatus.ON_SCENE and grades.outranks(grade, unit.incident_grade):
            label = f"divert from grade {unit.incident_grade} job"
            out.append(
                _candidate(unit, eta_s, distance, need.capability, label, now, unit.incident_id)
            )
        elif unit.status is UnitStatus.ON_SCENE:
            out.append(_candidate(unit, eta_s, distance, None, "busy on scene, free soon", now))
        if len(out) >= k + 2:
            break
    return out


def _shortfall(
    directory: UnitDirectory,
    need: Need,
    taken: int,
    now: datetime,
    stale_after_s: int,
    chosen: set[int],
) -> str:
    # Only on the rare short path do we pay for a pass over the whole fleet.
    stale = no_position = busy = 0
    for unit in directory.units.values():
        if need.capability not in unit.capabilities or unit.id in chosen:
            continue
        if unit.status is UnitStatus.AVAILABLE:
            age = _age_s(unit, now)
            if age is None:
                no_position += 1
            elif age > stale_after_s:
                stale += 1
        elif unit.status in (UnitStatus.DISPATCHED, UnitStatus.EN_ROUTE, UnitStatus.ON_SCENE):
            busy += 1
    text = f"{need.count} {need.capability} needed, {taken} available"
    extra = []
    if stale:
        extra.append(f"{stale} more have positions older than {stale_after_s // 60} min")
    if no_position:
        extra.append(f"{no_position} more have no position")
    if busy:
        extra.append(f"{busy} busy on other jobs")
    return text + ("; " + "; ".join(extra) if extra else "")
