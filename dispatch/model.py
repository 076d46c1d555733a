"""Plain data the dispatch floor works with (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dispatch.status import UnitStatus


@dataclass(slots=True)
class UnitState:
    id: int
    callsign: str
    unit_type: str
    capabilities: frozenset[str]
    status: UnitStatus
    lat: float | None = None
    lng: float | None = None
    position_at: datetime | None = None
    incident_id: int | None = None
    incident_grade: str | None = None
    status_at: datetime | None = None
    area_code: str | None = None


@dataclass(frozen=True, slots=True)
class Need:
    capability: str
    count: int


# What any incident needs when its type names no plan (or a met plan, for a dispatcher
# who wants more): one response unit. The one place this is written.
FALLBACK_PLAN: tuple[Need, ...] = (Need("response", 1),)


@dataclass(frozen=True, slots=True)
class GradeOrder:
    """Grades from most to least urgent. The grade scheme (cad/grading/grade_scheme.json)
    is the one source; dispatch is told it rather than knowing the codes. Only the most
    urgent grade may take a unit from another job."""

    codes: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.codes or len(set(self.codes)) != len(self.codes):
            raise ValueError(f"grade order needs distinct codes, got {self.codes!r}")

    @property
    def most_urgent(self) -> str:
        return self.codes[0]

    def rank(self, code: str | None) -> int:
        """1 for the most urgent. A job with no grade recorded counts as the least urgent
        grade; a code the scheme does not know ranks after every grade."""
        if code is None:
            return len(self.codes)
        try:
            return self.codes.index(code) + 1
        except ValueError:
            return len(self.codes) + 1

    def outranks(self, grade: str, other: str | None) -> bool:
        return self.rank(grade) < self.rank(other)


@dataclass(frozen=True, slots=True)
class Candidate:
    unit_id: int
    callsign: str
    unit_type: str
    capabilities: tuple[str, ...]
    status: str
    eta_s: int
    distance_m: int
    fills: str | None
    label: str
    # Candidates never have stale positions (they are left out and counted in the
    # shortfall instead), so the age is shown, not a stale flag.
    position_age_s: int | None = None
    divert_from: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "unit_id": self.unit_id,
            "callsign": self.callsign,
            "unit_type": self.unit_type,
            "capabilities": list(self.capabilities),
            "status": self.status,
            "eta_s": self.eta_s,
            "distance_m": self.distance_m,
            "fills": self.fills,
            "label": self.label,
            "position_age_s": self.position_age_s,
            "divert_from": self.divert_from,
        }


@dataclass(slots=True)
class Recommendation:
    recommended: list[Candidate] = field(default_factory=list)
    alternatives: list[Candidate] = field(default_factory=list)
    shortfalls: list[str] = field(default_factory=list)
    needs: list[Need] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.shortfalls

    def as_dict(self) -> dict[str, object]:
        return {
            "recommended": [c.as_dict() for c in self.recommended],
            "alternatives": [c.as_dict() for c in self.alternatives],
            "shortfalls": self.shortfalls,
            "needs": [{"capability": n.capability, "count": n.count} for n in self.needs],
            "complete": self.complete,
        }
