"""A discrete-event study of a call log against a fleet, on a virtual clock.

Nothing here decides anything itself: each call is graded by the grading rules
(cad/grading), auto-dispatched grades are planned by the live engine's `plan_actions`
over the same `UnitDirectory` the server keeps, and units travel by the ETA model the
recommendations use. The loop only keeps time: a heap of (time, seq, event) where seq
breaks ties in the order events were made, so a run is a pure function of its inputs
and seed.

Simplifications (stated in the report): a unit is at its start point until it arrives
(a divert is planned from there); after clearing it is unavailable while it travels back
to base, where it becomes available; Extended calls join the queue a fixed delay after
they are received, as if booked for then.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cad.grading import Grade, IncidentType, Rule, grade_call, grade_order
from cad.study.sources import DATA, CallRecord, FleetUnit
from dispatch.directory import UnitDirectory
from dispatch.engine import EngineMemory, QueueItem, plan_actions, remaining_needs
from dispatch.model import FALLBACK_PLAN, Need, UnitState
from dispatch.policy import DEFAULT_MARGIN_S, Policy
from dispatch.status import UnitStatus
from gis.eta import EtaModel
from gis.projection import Projector

# Positions in the study are exact, never stale.
NEVER_STALE_S = 10**9
Z90 = 1.2815515655446004

CALL, RELEASE, ARRIVE, CLEAR, RETURN, SHIFT_ON, SHIFT_OFF = range(7)


@dataclass(frozen=True, slots=True)
class OnSceneModel:
    """Lognormal time on scene per incident type, from a median and a 90th percentile."""

    params: Mapping[str, tuple[float, float]]  # type -> (mu, sigma)
    default: tuple[float, float]

    @staticmethod
    def _fit(entry: Mapping[str, Any]) -> tuple[float, float]:
        median, p90 = float(entry["median_s"]), float(entry["p90_s"])
        return math.log(median), max(math.log(p90 / median), 0.0) / Z90

    @classmethod
    def load(cls, path: Path = DATA / "on_scene.json") -> OnSceneModel:
        doc = json.loads(path.read_text(encoding="utf-8"))
        types = {t: cls._fit(e) for t, e in doc.get("types", {}).items()}
        return cls(types, cls._fit(doc["default"]))

    @classmethod
    def fixed(cls, seconds: float) -> OnSceneModel:
        return cls({}, (math.log(seconds), 0.0))

    def draw(self, type_code: str, rng: random.Random) -> float:
        mu, sigma = self.params.get(type_code, self.default)
        return math.exp(mu) if sigma == 0 else rng.lognormvariate(mu, sigma)


@dataclass(frozen=True, slots=True)
class StudyConfig:
    seed: int = 0
    # Extended ("by appointment") calls join the queue this long after they are received.
    e_delay_s: float = 7200.0
    divert_min_saving_s: int = 120
    # Officer's emergency plan size, as CAD_EMERGENCY_UNITS.
    emergency_units: int = 3
    # Which unit the engine sends among those ranked (dispatch/policy.py).
    policy: Policy = Policy.NEAREST
    policy_margin_s: int = DEFAULT_MARGIN_S


@dataclass(slots=True)
class SimIncident:
    id: int
    call: CallRecord
    grade: str
    rule: str
    plan: tuple[Need, ...]
    released_s: float | None = None
    first_dispatch_s: float | None = None
    first_on_scene_s: float | None = None
    closed_s: float | None = None
    # Units sent and not diverted away: each covers one place in the plan.
    attached: dict[int, frozenset[str]] = field(default_factory=dict)
    dispatches: int = 0
    diverted_away: int = 0


@dataclass(slots=True)
class SimUnit:
    state: UnitState
    base: tuple[float, float]
    area_code: str | None
    gen: int = 0
    job: int | None = None
    busy_since: float | None = None
    busy_s: float = 0.0
    off_after_job: bool = False
    on_duty: list[tuple[float, float]] = field(default_factory=list)


@dataclass(slots=True)
class SimResult:
    start: datetime
    horizon_s: float
    end_s: float
    incidents: list[SimIncident]
    units: list[SimUnit]
    # (time, pending count per grade) after each dispatch pass that changed it.
    queue: list[tuple[float, dict[str, int]]]
    scheme: Mapping[str, Grade]
    grades: tuple[str, ...]


Progress = Callable[[int, int], None]


class Simulation:
    def __init__(
        self,
        calls: Sequence[CallRecord],
        fleet: Sequence[FleetUnit],
        *,
        start: datetime,
        catalogue: Mapping[str, IncidentType],
        scheme: Mapping[str, Grade],
        rules: Sequence[Rule],
        plans: Mapping[str, Sequence[Need]],
        eta: EtaModel,
        projector: Projector,
        on_scene: OnSceneModel,
        config: StudyConfig = StudyConfig(),
    ) -> None:
        unknown = sorted({c.incident_type for c in calls} - set(catalogue))
        if unknown:
            raise ValueError(f"incident types not in the catalogue: {', '.join(unknown)}")
        self.calls = list(calls)
        self.start = start
        self.catalogue = catalogue
        self.scheme = scheme
        self.rules = rules
        self.plans = plans
        self.eta = eta
        self.projector = projector
        self.on_scene = on_scene
        self.config = config
        self.rng = random.Random(config.seed)
        order = grade_order(scheme)
        self.order = order
        self.directory = UnitDirectory(projector, order)
        self.horizon_s = max((c.received_s for c in self.calls), default=0.0)
        self.units: dict[int, SimUnit] = {}
        states: list[UnitState] = []
        for i, fu in enumerate(fleet, start=1):
            st = UnitState(
                id=i,
                callsign=fu.callsign,
                unit_type=fu.unit_type,
                capabilities=fu.capabilities,
                status=UnitStatus.AVAILABLE,
                lat=fu.lat,
                lng=fu.lng,
                position_at=start,
                area_code=fu.area_code,
                status_at=start,
            )
            su = SimUnit(st, (fu.lat, fu.lng), fu.area_code)
            su.on_duty = self._shifts(fu)
            if su.on_duty and su.on_duty[0][0] > 0:
                st.status = UnitStatus.OFF_DUTY
            self.units[i] = su
            states.append(st)
        self.directory.load(states)
        self.incidents: list[SimIncident] = []
        self.pending: dict[int, SimIncident] = {}
        self.heap: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        self.queue_log: list[tuple[float, dict[str, int]]] = []
        # The leader's memory of what it could not serve: a short incident is planned
        # again only once the fleet has changed. Its time-based refresh is for positions
        # going stale in the live service; here positions are exact, so it never fires.
        self.memory = EngineMemory(refresh_s=math.inf)
        for i, call in enumerate(self.calls, start=1):
            self._push(call.received_s, CALL, i)
        for uid, su in self.units.items():
            for on, off in su.on_duty:
                if on > 0:
                    self._push(on, SHIFT_ON, uid)
                self._push(off, SHIFT_OFF, uid)

    # ----------------------------------------------------------------- set-up

    def _shifts(self, fu: FleetUnit) -> list[tuple[float, float]]:
        """On-duty intervals over the log's span (empty: always on duty)."""
        if fu.shift_start_h % 24 == fu.shift_end_h % 24:
            return []
        midnight = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        offset = (self.start - midnight).total_seconds()
        length_h = (fu.shift_end_h - fu.shift_start_h) % 24
        out: list[tuple[float, float]] = []
        days = int(self.horizon_s // 86400) + 2
        for d in range(-1, days + 1):
            on = d * 86400 + fu.shift_start_h * 3600 - offset
            off = on + length_h * 3600
            if off <= 0 or on > self.horizon_s + 86400:
                continue
            out.append((max(on, 0.0), off))
        return out

    def _push(self, t: float, kind: int, a: int, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b))

    def _now(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t)

    def _eta(self, unit: UnitState, lat: float, lng: float) -> int:
        assert unit.lat is not None and unit.lng is not None
        x0, y0 = self.projector.to_metres(unit.lat, unit.lng)
        x1, y1 = self.projector.to_metres(lat, lng)
        return round(self.eta.eta_s(math.hypot(x1 - x0, y1 - y0), unit.unit_type))

    def _set_status(self, su: SimUnit, status: UnitStatus, t: float) -> None:
        job = self.incidents[su.job - 1] if su.job is not None else None
        self.directory.apply_status(
            su.state.id,
            status,
            job.id if job else None,
            job.grade if job else None,
            at=self._now(t),
        )

    def _move(self, su: SimUnit, lat: float, lng: float, t: float) -> None:
        self.directory.apply_position(su.state.id, lat, lng, self._now(t))

    # ----------------------------------------------------------------- events

    def _on_call(self, t: float, i: int) -> None:
        call = self.calls[i - 1]
        itype = self.catalogue[call.incident_type]
        decision = grade_call(itype, call.risk, self.rules, self.scheme)
        plan = tuple(self.plans.get(call.incident_type) or FALLBACK_PLAN)
        inc = SimIncident(i, call, decision.grade, decision.rule_id, plan)
        self.incidents.append(inc)
        grade = self.scheme[decision.grade]
        if grade.closes_on_creation:
            inc.closed_s = t
        elif grade.auto_dispatch:
            inc.released_s = t
            self.pending[i] = inc
        else:
            self._push(t + self.config.e_delay_s, RELEASE, i)

    def _on_arrive(self, t: float, uid: int, gen: int) -> None:
        su = self.units[uid]
        if gen != su.gen or su.job is None:
            return  # diverted since
        inc = self.incidents[su.job - 1]
        self._move(su, inc.call.lat, inc.call.lng, t)
        self._set_status(su, UnitStatus.ON_SCENE, t)
        if inc.first_on_scene_s is None:
            inc.first_on_scene_s = t
        self._push(t + self.on_scene.draw(inc.call.incident_type, self.rng), CLEAR, uid, su.gen)

    def _on_clear(self, t: float, uid: int, gen: int) -> None:
        su = self.units[uid]
        if gen != su.gen:
            return
        self._set_status(su, UnitStatus.UNAVAILABLE, t)
        su.job = None
        self._push(t + self._eta(su.state, *su.base), RETURN, uid, su.gen)

    def _on_return(self, t: float, uid: int, gen: int) -> None:
        su = self.units[uid]
        if gen != su.gen:
            return
        self._move(su, su.base[0], su.base[1], t)
        self._end_busy(su, t)
        if su.off_after_job:
            su.off_after_job = False
            self._set_status(su, UnitStatus.OFF_DUTY, t)
        else:
            self._set_status(su, UnitStatus.AVAILABLE, t)

    def _on_shift(self, t: float, uid: int, on: bool) -> None:
        su = self.units[uid]
        status = su.state.status
        if on:
            su.off_after_job = False
            if status is UnitStatus.OFF_DUTY:
                self._set_status(su, UnitStatus.AVAILABLE, t)
        elif status is UnitStatus.AVAILABLE:
            self._set_status(su, UnitStatus.OFF_DUTY, t)
        else:
            su.off_after_job = True  # finishes the job first

    def _end_busy(self, su: SimUnit, t: float) -> None:
        if su.busy_since is not None:
            su.busy_s += max(0.0, min(t, self.horizon_s) - min(su.busy_since, self.horizon_s))
            su.busy_since = None

    # ----------------------------------------------------------------- dispatch

    def _needs(self, inc: SimIncident) -> tuple[Need, ...]:
        return tuple(remaining_needs(inc.plan, list(inc.attached.values())))

    def _dispatch_pass(self, t: float) -> None:
        rank = self.order.rank
        items: list[QueueItem] = []
        for inc in sorted(
            self.pending.values(), key=lambda x: (rank(x.grade), x.call.received_s, x.id)
        ):
            needs = self._needs(inc)
            if needs:
                items.append(
                    QueueItem(
                        inc.id, inc.grade, inc.call.lat, inc.call.lng, needs, inc.call.area_code
                    )
                )
        if not items:
            self.pending.clear()
            return
        planned = self.memory.worth_planning(items, self.directory, self._now(t))
        actions = plan_actions(
            planned,
            self.directory,
            self.eta,
            self._now(t),
            stale_after_s=NEVER_STALE_S,
            divert_min_saving_s=self.config.divert_min_saving_s,
            policy=self.config.policy,
            policy_margin_s=self.config.policy_margin_s,
        )
        self.memory.remember_short(items, actions)
        for action in actions:
            su = self.units[action.unit_id]
            inc = self.incidents[action.incident_id - 1]
            if action.divert_from_incident is not None:
                old = self.incidents[action.divert_from_incident - 1]
                old.attached.pop(su.state.id, None)
                old.diverted_away += 1
                self.pending[old.id] = old
            else:
                su.busy_since = t
            su.gen += 1
            su.job = inc.id
            inc.attached[su.state.id] = su.state.capabilities
            inc.dispatches += 1
            if inc.first_dispatch_s is None:
                inc.first_dispatch_s = t
            self._set_status(su, UnitStatus.DISPATCHED, t)
            self._push(t + action.eta_s, ARRIVE, su.state.id, su.gen)
        counts: dict[str, int] = {}
        for inc in list(self.pending.values()):
            if self._needs(inc):
                counts[inc.grade] = counts.get(inc.grade, 0) + 1
            else:
                del self.pending[inc.id]
        if (self.queue_log[-1][1] if self.queue_log else {}) != counts:
            self.queue_log.append((t, counts))

    # ----------------------------------------------------------------- loop

    def run(self, progress: Progress | None = None) -> SimResult:
        total = len(self.calls)
        seen = 0
        t = 0.0
        while self.heap:
            t = self.heap[0][0]
            while self.heap and self.heap[0][0] == t:
                _, _, kind, a, b = heapq.heappop(self.heap)
                if kind == CALL:
                    self._on_call(t, a)
                    seen += 1
                elif kind == RELEASE:
                    inc = self.incidents[a - 1]
                    inc.released_s = t
                    self.pending[a] = inc
                elif kind == ARRIVE:
                    self._on_arrive(t, a, b)
                elif kind == CLEAR:
                    self._on_clear(t, a, b)
                elif kind == RETURN:
                    self._on_return(t, a, b)
                else:
                    self._on_shift(t, a, kind == SHIFT_ON)
            if self.pending:
                self._dispatch_pass(t)
            elif self.queue_log and self.queue_log[-1][1]:
                self.queue_log.append((t, {}))
            if progress is not None and kind == CALL:
                progress(seen, total)
        for su in self.units.values():
            self._end_busy(su, t)
        return SimResult(
            start=self.start,
            horizon_s=self.horizon_s,
            end_s=t,
            incidents=self.incidents,
            units=list(self.units.values()),
            queue=self.queue_log,
            scheme=self.scheme,
            grades=self.order.codes,
        )
