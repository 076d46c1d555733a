"""Auto-dispatch: the pending queue worked by the elected engine.

The plan (which unit to which incident) is a pure function of the queue and the fleet
picture; carrying it out goes through ``service.assign_unit`` so the same conditional
UPDATE guards it as guards a dispatcher's click.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from dispatch import repository as repo
from dispatch.directory import UnitDirectory
from dispatch.model import FALLBACK_PLAN, Need
from dispatch.policy import DEFAULT_MARGIN_S, POOL_EXTRA, Policy, choose, count_spare
from dispatch.recommend import busy_candidates, recommend
from dispatch.service import DispatchError, Emit, assign_unit
from dispatch.status import UnitStatus
from gis.eta import EtaModel

log = structlog.get_logger(__name__)

ENGINE_ACTOR = "engine:auto-dispatch"


@dataclass(frozen=True, slots=True)
class Action:
    incident_id: int
    unit_id: int
    eta_s: int
    grade: str
    divert_from_incident: int | None = None


def remaining_needs(plan: Sequence[Need], assigned_caps: Sequence[frozenset[str]]) -> list[Need]:
    """The plan less what the units already on it cover (each unit covers one need).

    A maximum matching of units to the plan's places, so the answer does not depend on
    the order units are listed in: an armed unit counts as the armed place, not as one of
    the response places that a plain car could fill.
    """
    slots = [n.capability for n in plan for _ in range(n.count)]
    holder: list[int | None] = [None] * len(slots)

    def place(unit: int, seen: set[int]) -> bool:
        for i, cap in enumerate(slots):
            if cap in assigned_caps[unit] and i not in seen:
                seen.add(i)
                current = holder[i]
                if current is None or place(current, seen):
                    holder[i] = unit
                    return True
        return False

    for unit in range(len(assigned_caps)):
        place(unit, set())
    left: dict[str, int] = {}
    for i, cap in enumerate(slots):
        if holder[i] is None:
            left[cap] = left.get(cap, 0) + 1
    return [Need(n.capability, left[n.capability]) for n in plan if left.get(n.capability)]


@dataclass(frozen=True, slots=True)
class QueueItem:
    incident_id: int
    grade: str
    lat: float
    lng: float
    needs: tuple[Need, ...]
    # The incident's area, for the policies that weigh boroughs (nearest ignores it).
    area_code: str | None = None


def plan_actions(
    queue: Sequence[QueueItem],
    directory: UnitDirectory,
    eta: EtaModel,
    now: datetime,
    *,
    stale_after_s: int,
    divert_min_saving_s: int,
    policy: Policy = Policy.NEAREST,
    policy_margin_s: int = DEFAULT_MARGIN_S,
) -> list[Action]:
    """Most urgent first: each incident takes the best units left after those before it.

    ``policy`` chooses among the ranked available units (dispatch/policy.py); the
    default, nearest by ETA, takes recommend's own choice."""
    taken: set[int] = set()
    actions: list[Action] = []
    nearest = policy is Policy.NEAREST
    spare = {} if nearest else count_spare(directory.units.values())
    for item in queue:
        if not item.needs:
            continue
        rec = recommend(
            directory,
            item.lat,
            item.lng,
            item.needs,
            eta,
            now,
            grade=item.grade,
            stale_after_s=stale_after_s,
            alternatives=0 if nearest else POOL_EXTRA,
            exclude=frozenset(taken),
            include_busy=False,
            explain=False,
        )
        chosen = rec.recommended
        if not nearest:
            order = sorted(item.needs, key=lambda n: len(directory.available.get(n.capability, ())))
            chosen = choose(
                rec,
                order,
                policy=policy,
                incident_area=item.area_code,
                area_of={
                    c.unit_id: directory.units[c.unit_id].area_code
                    for c in (*rec.recommended, *rec.alternatives)
                },
                spare=spare,
                guard_coverage=item.grade != directory.grades.most_urgent,
                margin_s=policy_margin_s,
            )
        for cand in chosen:
            taken.add(cand.unit_id)
            actions.append(Action(item.incident_id, cand.unit_id, cand.eta_s, item.grade))
        if item.grade != directory.grades.most_urgent:
            continue
        # Immediate grade: a unit heading to lower-grade work may be worth taking.
        x, y = directory.projector.to_metres(item.lat, item.lng)
        by_need = {c.fills: c for c in chosen}
        filled = {n.capability: 0 for n in item.needs}
        for c in chosen:
            if c.fills:
                filled[c.fills] += 1
        for need in item.needs:
            short = need.count - filled.get(need.capability, 0)
            best_available = by_need.get(need.capability)
            for cand in busy_candidates(
                directory, x, y, need, eta, now, item.grade, stale_after_s, max(short, 1)
            ):
                if cand.divert_from is None or cand.unit_id in taken:
                    continue
                saving_ok = (
                    best_available is not None
                    and best_available.eta_s - cand.eta_s >= divert_min_saving_s
                )
                if short <= 0 and not saving_ok:
                    break
                taken.add(cand.unit_id)
                actions.append(
                    Action(item.incident_id, cand.unit_id, cand.eta_s, item.grade, cand.divert_from)
                )
                short -= 1
                if short <= 0:
                    break
    return actions


Transaction = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]


@dataclass
class EngineMemory:
    """What the last pass could not serve, and the fleet's availability epoch then."""

    epoch: int = -1
    divertable_epoch: int = -1
    # A full replan at least this often, whatever the epochs say.
    refresh_s: float = 10.0
    planned_at: datetime | None = None
    short: frozenset[tuple[int, tuple[Need, ...]]] = frozenset()
    # Every incident a pass has planned or read since the last full read: one that
    # arrives in an event after that read saw it is not planned a second time.
    seen: frozenset[int] = frozenset()

    def only_arrivals(self, directory: UnitDirectory, now: datetime) -> bool:
        """True when a full pass would plan nothing but incidents that arrived since the
        last one: that read is fresh and no unit has become available or divertable, so
        everything it left short is still short (see worth_planning)."""
        return (
            self.planned_at is not None
            and (now - self.planned_at).total_seconds() < self.refresh_s
            and self.epoch == directory.available_epoch
            and self.divertable_epoch == directory.divertable_epoch
        )

    def worth_planning(
        self, queue: list[QueueItem], directory: UnitDirectory, now: datetime
    ) -> list[QueueItem]:
        """The queue minus incidents the last pass left short with these same needs, while
        no unit has become available since (for I grades, nor become divertable)."""
        fresh = self.planned_at is not None and (
            (now - self.planned_at).total_seconds() < self.refresh_s
        )
        if not fresh:
            self.planned_at = now
        same_available = fresh and self.epoch == directory.available_epoch
        same_divertable = self.divertable_epoch == directory.divertable_epoch
        self.epoch = directory.available_epoch
        self.divertable_epoch = directory.divertable_epoch
        return [
            item
            for item in queue
            if not same_available
            or (item.grade == directory.grades.most_urgent and not same_divertable)
            or (item.incident_id, item.needs) not in self.short
        ]

    def remember_short(
        self,
        queue: Sequence[QueueItem],
        actions: list[Action],
        read: Sequence[int] = (),
        *,
        arrivals: bool = False,
    ) -> None:
        """After a full pass (``read``: every incident it read) or, with ``arrivals``,
        after planning only new incidents, which add to what the full pass left."""
        served = {a.incident_id for a in actions}
        short = {(item.incident_id, item.needs) for item in queue if item.incident_id not in served}
        ids = {item.incident_id for item in queue}
        if arrivals:
            self.short, self.seen = self.short | short, self.seen | ids
        else:
            self.short, self.seen = frozenset(short), frozenset(ids.union(read))


def arrival(
    incident_id: int,
    grade: str,
    type_code: str,
    lat: float,
    lng: float,
    plans: Mapping[str, Sequence[Need]],
) -> QueueItem:
    """A queue item for an incident just created (no unit on it yet), from its event."""
    needs = remaining_needs(plan_for(plans, type_code), [])
    return QueueItem(incident_id, grade, lat, lng, tuple(needs))


def plan_for(plans: Mapping[str, Sequence[Need]], type_code: str) -> Sequence[Need]:
    """An incident type's response plan; a type without one gets the fallback."""
    return plans.get(type_code) or FALLBACK_PLAN


async def run_once(
    transaction: Transaction,
    emit: Emit,
    directory: UnitDirectory,
    plans: Mapping[str, Sequence[Need]],
    eta: EtaModel,
    now: datetime,
    *,
    grades: Sequence[str],
    stale_after_s: int,
    divert_min_saving_s: int,
    memory: EngineMemory | None = None,
    arrived: Sequence[QueueItem] | None = None,
) -> list[Action]:
    """One pass over the queue; returns the assignments that committed.

    With ``memory``, incidents left short by the last pass with the same needs are not
    planned again until a unit has become available (for I grades, also until a unit has
    taken lower-grade work, which makes it a candidate for a divert). ``arrived``, every
    incident created since the last pass (from the events), lets a pass that would plan
    only those skip reading the queue: under a stream of calls with the fleet committed,
    that read was most of the leader's work."""

    def plan(items: list[QueueItem]) -> list[Action]:
        return plan_actions(
            items,
            directory,
            eta,
            now,
            stale_after_s=stale_after_s,
            divert_min_saving_s=divert_min_saving_s,
        )

    if memory is not None and arrived is not None and memory.only_arrivals(directory, now):
        rank = {g: i for i, g in enumerate(grades)}
        queue = sorted(
            (a for a in arrived if a.grade in rank and a.incident_id not in memory.seen),
            key=lambda a: (rank[a.grade], a.incident_id),
        )
        actions = plan(queue)
        if actions:
            # As the event told of them, unless something has happened to them since
            # (units sent with the call, a dispatcher first): those wait for a read.
            # Asked only when units would go: with the fleet committed, the pass needs
            # no round trip at all.
            async with transaction() as conn:
                fresh = await repo.untouched(conn, [a.incident_id for a in queue])
            if len(fresh) < len(queue):
                queue = [a for a in queue if a.incident_id in fresh]
                actions = plan(queue)
        memory.remember_short(queue, actions, arrivals=True)
    else:
        async with transaction() as conn:
            rows = await repo.pending_queue(conn, list(grades))
        queue = _still_short(rows, directory, plans)
        planned = queue if memory is None else memory.worth_planning(queue, directory, now)
        actions = plan(planned)
        if memory is not None:
            memory.remember_short(queue, actions, [r["id"] for r in rows])
    return [a for a in actions if await _commit(transaction, emit, directory, a)]


def _still_short(
    rows: Sequence[Mapping[str, Any]], directory: UnitDirectory, plans: Mapping[str, Sequence[Need]]
) -> list[QueueItem]:
    """Pending incidents whose response plan the units already sent do not yet fill."""
    queue: list[QueueItem] = []
    for row in rows:
        caps = [directory.units[u].capabilities for u in row["unit_ids"] if u in directory.units]
        needs = remaining_needs(plan_for(plans, row["type_code"]), caps)
        if needs:
            queue.append(QueueItem(row["id"], row["grade"], row["lat"], row["lng"], tuple(needs)))
    return queue


async def _commit(
    transaction: Transaction, emit: Emit, directory: UnitDirectory, action: Action
) -> bool:
    """Make one planned assignment in its own transaction; False if the world moved on."""
    try:
        async with transaction() as conn:
            divert_assignment = None
            if action.divert_from_incident is not None:
                held = await repo.open_assignment_for_unit(conn, action.unit_id)
                if held is None or held["incident_id"] != action.divert_from_incident:
                    return False  # the unit left that job since the plan was made
                divert_assignment = held["id"]
            await assign_unit(
                conn,
                emit,
                action.incident_id,
                action.unit_id,
                ENGINE_ACTOR,
                auto=True,
                divert_from_assignment=divert_assignment,
            )
    except DispatchError as exc:
        # Someone else took the unit first: the next pass plans again from fresh state.
        log.info("engine.skipped", incident_id=action.incident_id, reason=exc.detail)
        return False
    # Seen at once by this worker's picture; other workers learn it from the event.
    directory.apply_status(action.unit_id, UnitStatus.DISPATCHED, action.incident_id, action.grade)
    log.info(
        "engine.assigned",
        incident_id=action.incident_id,
        unit_id=action.unit_id,
        eta_s=action.eta_s,
        diverted_from=action.divert_from_incident,
    )
    return True
