"""Which units to send: ranked by ETA against the incident's response plan (pure).

For each capability the plan needs, walk that capability's index outwards from the
incident and stop as soon as no unit further out could beat the ones already found: the
ETA model's lower bound at the current distance exceeds the k-th best ETA. That keeps a
query to a handful of units even with 10,000 in the fleet, and the answer equals a brute
force ranking (tested).
"""

from __future__ import annotations

import bisect
import heapq
import math
import operator
from collections.abc import Mapping, Sequence, Set
from datetime import datetime, timedelta

from dispatch.directory import UnitDirectory
from dispatch.model import Candidate, Need, Recommendation, UnitState
from dispatch.status import UnitStatus
from gis.eta import EtaModel, KolesarEta
from gis.spatial import GridIndex, UnitIndex

_STATUS_VALUE = {s: s.value for s in UnitStatus}
_by_eta = operator.attrgetter("eta_s")


def _age_s(unit: UnitState, now: datetime) -> int | None:
    if unit.position_at is None:
        return None
    return int((now - unit.position_at).total_seconds())


def ranked(
    index: GridIndex | UnitIndex,
    directory: UnitDirectory,
    x: float,
    y: float,
    k: int,
    eta: EtaModel,
    now: datetime,
    stale_after_s: int,
    exclude: Set[int] = frozenset(),
) -> list[tuple[float, float, int]]:
    """The k best (eta_s, distance_m, unit_id) in an index, best first, fresh positions only.

    Ties in ETA go to the nearer unit, then the lower id."""
    if k <= 0:
        return []
    cutoff = now - timedelta(seconds=stale_after_s)
    if isinstance(index, GridIndex):
        return _ranked_grid(index, directory.units, x, y, k, eta, cutoff, exclude)
    best: list[tuple[float, float, int]] = []  # max-heap on eta via negation
    units = directory.units

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


def _ranked_grid(
    index: GridIndex,
    units: Mapping[int, UnitState],
    x: float,
    y: float,
    k: int,
    eta: EtaModel,
    cutoff: datetime,
    exclude: Set[int],
) -> list[tuple[float, float, int]]:
    # Ring by ring outwards, every qualifying unit is scored exactly; the walk stops once
    # no unit beyond the rings walked can beat the k-th best, as the model's lower bound
    # at the rings' edge exceeds its ETA. The heap holds the k best by (eta, distance,
    # id), the worst on top: keys negated, as heapq keeps the smallest on top.
    if type(eta) is KolesarEta:
        return _ranked_kolesar(index, units, x, y, k, eta, cutoff, exclude)
    heap: list[tuple[float, float, int]] = []
    worst = math.inf
    for cells, bound in index.iter_rings(x, y):
        for cell in cells:
            for ux, uy, uid in cell:
                if uid in exclude:
                    continue
                unit = units.get(uid)
                if unit is None or unit.position_at is None or unit.position_at < cutoff:
                    continue
                d = math.hypot(ux - x, uy - y)
                s = eta.eta_s(d, unit.unit_type)
                item = (-s, -d, -uid)
                if len(heap) < k:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
                else:
                    continue
                if len(heap) == k:
                    worst = -heap[0][0]
        if len(heap) >= k and bound < math.inf and eta.min_eta_s(bound) > worst:
            break
    return sorted([(-s, -d, -u) for s, d, u in heap])


def _ranked_kolesar(
    index: GridIndex,
    units: Mapping[int, UnitState],
    x: float,
    y: float,
    k: int,
    eta: KolesarEta,
    cutoff: datetime,
    exclude: Set[int],
) -> list[tuple[float, float, int]]:
    # The hot path, run once per need of every recommendation: `_ranked_grid` with the
    # Kolesar curves evaluated inline (the same floats as `KolesarEta.eta_s`), and units
    # beyond the reach of the k-th best ETA (the distance from which the model's lower
    # envelope exceeds it) passed over on their squared distance alone.
    curves, fallback = eta.coefficients()
    table, step = eta.envelope()
    n_table = len(table)
    heap: list[tuple[float, float, int]] = []
    full = False
    worst = reach = reach2 = math.inf
    sqrt, push, replace, bisect_right = (
        math.sqrt,
        heapq.heappush,
        heapq.heapreplace,
        bisect.bisect_right,
    )
    for cells, bound in index.iter_rings(x, y):
        for cell in cells:
            for ux, uy, uid in cell:
                dx = ux - x
                dy = uy - y
                d2 = dx * dx + dy * dy
                if d2 > reach2:
                    continue
                unit = units.get(uid)
                if unit is None or uid in exclude:
                    continue
                at = unit.position_at
                if at is None or at < cutoff:
                    continue
                d = sqrt(d2)
                a, b, c, e, d_crit = curves.get(unit.unit_type, fallback)
                s = a + b * sqrt(d) if d < d_crit else c + e * d
                if full:
                    if s > worst:
                        continue
                    item = (-s, -d, -uid)
                    if item < heap[0]:
                        continue
                    replace(heap, item)
                else:
                    push(heap, (-s, -d, -uid))
                    if len(heap) < k:
                        continue
                    full = True
                worst = -heap[0][0]
                # From reach on, no unit type arrives within worst: the envelope's entry
                # at any distance >= reach is past worst (entries never decrease).
                i = bisect_right(table, worst)
                if i < n_table:
                    reach = i * step
                    # A hair wider, so that rounding in d2 never passes over a unit at reach.
                    reach2 = reach * reach * (1.0 + 1e-12) + 1e-6
        if bound >= reach:
            break
    return sorted([(-s, -d, -u) for s, d, u in heap])


_CAPS: dict[frozenset[str], tuple[str, ...]] = {}


def _candidate(
    unit: UnitState,
    eta_s: float,
    distance: float,
    fills: str | None,
    label: str,
    now: datetime,
    divert_from: int | None = None,
) -> Candidate:
    caps = _CAPS.get(unit.capabilities)
    if caps is None:
        if len(_CAPS) > 1024:
            _CAPS.clear()
        caps = _CAPS[unit.capabilities] = tuple(sorted(unit.capabilities))
    at = unit.position_at
    return Candidate(
        unit.id,
        unit.callsign,
        unit.unit_type,
        caps,
        _STATUS_VALUE[unit.status],
        round(eta_s),
        round(distance),
        fills,
        label,
        None if at is None else int((now - at).total_seconds()),
        divert_from,
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
    exclude: Set[int] = frozenset(),
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
    recommended, alts = result.recommended, result.alternatives
    chosen: set[int] = set(exclude)
    available, units = directory.available, directory.units
    cutoff = now - timedelta(seconds=stale_after_s)
    kolesar = eta if type(eta) is KolesarEta else None
    # Scarce capabilities first, so a unit with several does not get spent on a common need.
    order = sorted(needs, key=lambda n: len(available.get(n.capability, ())))
    seen_alt: set[int] = set()
    for need in order:
        index = available.get(need.capability)
        k = need.count + alternatives
        if index is None or k <= 0:
            found = []
        elif kolesar is not None and isinstance(index, GridIndex):
            found = _ranked_kolesar(index, units, x, y, k, kolesar, cutoff, chosen)
        else:
            found = ranked(index, directory, x, y, k, eta, now, stale_after_s, chosen)
        taken = 0
        for eta_s, distance, unit_id in found:
            if taken < need.count:
                recommended.append(
                    _candidate(units[unit_id], eta_s, distance, need.capability, "available", now)
                )
                chosen.add(unit_id)
                taken += 1
            elif unit_id not in seen_alt:
                seen_alt.add(unit_id)
                alts.append(_candidate(units[unit_id], eta_s, distance, None, "available", now))
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
    recommended.sort(key=_by_eta)
    if any(c.label != "available" for c in alts):
        alts.sort(key=lambda c: (c.label != "available", c.eta_s))
    else:
        alts.sort(key=_by_eta)
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
