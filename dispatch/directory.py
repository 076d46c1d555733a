"""The in-memory picture of the fleet one worker recommends from.

A cache, never the record: rebuilt from PostgreSQL at start and refreshed from events,
Redis position broadcasts and periodic reloads. Assignment itself is decided in
PostgreSQL, so a stale picture costs a 409 and a fresh recommendation, never a double
booking.

Units sit in one spatial index per capability, split into available and busy, so a
query for "nearest available armed unit" looks only at armed available units instead of
filtering all of them. The indexes are grids updated in place: a move or a status change
costs O(1) and is seen by the very next query.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from dispatch.model import GradeOrder, UnitState
from dispatch.status import ON_JOB, UnitStatus
from gis.projection import Projector
from gis.spatial import GridIndex


class UnitDirectory:
    def __init__(self, projector: Projector, grades: GradeOrder) -> None:
        self.projector = projector
        self.grades = grades
        self.units: dict[int, UnitState] = {}
        self.available: dict[str, GridIndex] = {}
        self.busy: dict[str, GridIndex] = {}
        self._xy: dict[int, tuple[float, float]] = {}
        # Counts units becoming available: an incident that could not be served has no
        # better chance until this moves, so the engine need not plan it again.
        self.available_epoch = 0
        # Counts units taking lower-grade work: new candidates for a most-urgent divert.
        self.divertable_epoch = 0

    def __len__(self) -> int:
        return len(self.units)

    def load(self, units: Iterable[UnitState]) -> None:
        """Replace the whole picture (start-up and periodic reload)."""
        self.units = {}
        self._xy = {}
        avail: dict[str, list[tuple[int, float, float]]] = {}
        busy: dict[str, list[tuple[int, float, float]]] = {}
        for unit in units:
            self.units[unit.id] = unit
            if unit.lat is None or unit.lng is None:
                continue
            x, y = self.projector.to_metres(unit.lat, unit.lng)
            self._xy[unit.id] = (x, y)
            target = self._bucket_lists(unit.status, avail, busy)
            if target is not None:
                for cap in unit.capabilities:
                    target.setdefault(cap, []).append((unit.id, x, y))
        self.available = {}
        self.busy = {}
        self.available_epoch += 1
        self.divertable_epoch += 1
        for caps, indexes in ((avail, self.available), (busy, self.busy)):
            for cap, items in caps.items():
                index = GridIndex()
                index.bulk_load(items)
                indexes[cap] = index

    @staticmethod
    def _bucket_lists(
        status: UnitStatus,
        avail: dict[str, list[tuple[int, float, float]]],
        busy: dict[str, list[tuple[int, float, float]]],
    ) -> dict[str, list[tuple[int, float, float]]] | None:
        if status is UnitStatus.AVAILABLE:
            return avail
        if status in ON_JOB:
            return busy
        return None

    def _unindex(self, unit: UnitState) -> None:
        for indexes in (self.available, self.busy):
            for cap in unit.capabilities:
                index = indexes.get(cap)
                if index is not None and unit.id in index:
                    index.remove(unit.id)

    def _index(self, unit: UnitState) -> None:
        xy = self._xy.get(unit.id)
        if xy is None:
            return
        if unit.status is UnitStatus.AVAILABLE:
            indexes = self.available
        elif unit.status in ON_JOB:
            indexes = self.busy
        else:
            return
        for cap in unit.capabilities:
            indexes.setdefault(cap, GridIndex()).upsert(unit.id, xy[0], xy[1])

    def apply_position(self, unit_id: int, lat: float, lng: float, at: datetime) -> bool:
        """Move a unit; older reports than the one held are ignored. True if applied."""
        unit = self.units.get(unit_id)
        if unit is None:
            return False
        if unit.position_at is not None and at < unit.position_at:
            return False
        if unit.status is UnitStatus.AVAILABLE and (
            unit.position_at is None or (at - unit.position_at).total_seconds() > 60
        ):
            # A unit with no recent position may have been unusable until now.
            self.available_epoch += 1
        unit.lat, unit.lng, unit.position_at = lat, lng, at
        self._xy[unit_id] = self.projector.to_metres(lat, lng)
        self._index(unit)
        return True

    def apply_status(
        self,
        unit_id: int,
        status: UnitStatus,
        incident_id: int | None,
        incident_grade: str | None,
        at: datetime | None = None,
    ) -> None:
        unit = self.units.get(unit_id)
        if unit is None:
            return
        self._unindex(unit)
        if status is UnitStatus.AVAILABLE and unit.status is not UnitStatus.AVAILABLE:
            self.available_epoch += 1
        if (
            status in (UnitStatus.DISPATCHED, UnitStatus.EN_ROUTE)
            and incident_grade != self.grades.most_urgent
        ):
            self.divertable_epoch += 1
        unit.status = status
        unit.incident_id = incident_id if status in ON_JOB else None
        unit.incident_grade = incident_grade if status in ON_JOB else None
        if at is not None:
            unit.status_at = at
        self._index(unit)
