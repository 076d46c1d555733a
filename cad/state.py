"""Typed start-up state: everything a worker builds in lifespan and requests share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from redis.asyncio import Redis

from cad.auth.service import Auth
from cad.config import Settings
from cad.events.hub import Hub
from cad.fleet import FleetSync
from cad.grading import Grade, IncidentType, Rule
from cad.markers.catalogue import MarkerCategory
from cad.ratelimit import RateLimiter
from dispatch.directory import UnitDirectory
from dispatch.model import FALLBACK_PLAN, Need
from gis.areas import AreaSet
from gis.eta import EtaModel
from gis.projection import Projector

if TYPE_CHECKING:
    # The leader is given this state, so it cannot be imported at run time here.
    from cad.calls.service import IntakeBatching
    from cad.leader import Leader


@dataclass
class AppState:
    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    projector: Projector
    areas: AreaSet
    catalogue: dict[str, IncidentType]
    scheme: dict[str, Grade]
    rules: list[Rule]
    eta: EtaModel
    directory: UnitDirectory
    plans: dict[str, list[Need]] = field(default_factory=dict)
    marker_categories: dict[str, MarkerCategory] = field(default_factory=dict)
    hub: Hub | None = None
    fleet: FleetSync | None = None
    leader: Leader | None = None
    limiter: RateLimiter | None = None
    # The worker's shared reads and writes of new incidents (cad.calls.service).
    intake: IntakeBatching | None = None
    # Sign-in throttle and the guard of ended sessions (cad/auth).
    auth: Auth | None = None
    # Sector level within the areas (London's 2014 wards by default); None when an imported
    # area set has no imported wards.
    wards: AreaSet | None = None
    # /api/areas bodies per level ("borough", "ward"), simplified once and kept.
    areas_geojson_by_level: dict[str, dict[str, object]] = field(default_factory=dict)
    # NENA's EIDO schema (cad/eido/schema.py), read on first use.
    eido_schema: Any = None
    # Redis prefix for streams and channels: CAD_REDIS_PREFIX plus this database's id.
    stream_prefix: str = "cad"

    def auto_dispatches(self, grade: str) -> bool:
        """Whether the engine assigns this grade by itself, one answer for the engine,
        /api/grades and the preview: CAD_AUTO_DISPATCH_GRADES if set, else the scheme."""
        if grade not in self.scheme:
            return False
        chosen = self.settings.auto_grades
        return self.scheme[grade].auto_dispatch if chosen is None else grade in chosen

    def auto_grades(self) -> list[str]:
        """The auto-dispatched grades, most urgent first."""
        grades = sorted(self.scheme.values(), key=lambda g: g.priority)
        return [g.code for g in grades if self.auto_dispatches(g.code)]


def plans_from_catalogue(
    catalogue: dict[str, IncidentType], emergency_units: int | None = None
) -> dict[str, list[Need]]:
    """Response plans as dispatch needs; a plan-less type that is graded up still needs
    someone, so it falls back to one response unit. The officer's emergency sends as many
    response units as configured (CAD_EMERGENCY_UNITS)."""
    plans = {
        code: [Need(p.capability, p.count) for p in t.response_plan] or list(FALLBACK_PLAN)
        for code, t in catalogue.items()
    }
    if emergency_units is not None and "OFFICER_ASSIST" in plans:
        plans["OFFICER_ASSIST"] = [Need("response", emergency_units)]
    return plans
