"""Dispatch policies (dispatch/policy.py) in the engine's plan, and the fleet search."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cad.study.compare import compare_policies, find_fleet, within_target
from cad.study.sim import StudyConfig
from cad.study.sources import SF_WEEK, CallRecord, FleetUnit
from dispatch.directory import UnitDirectory
from dispatch.engine import Action, QueueItem, plan_actions
from dispatch.model import GradeOrder, Need, UnitState
from dispatch.policy import Policy
from dispatch.status import UnitStatus
from gis.projection import Projector
from tests.study.test_sim import LinearEta, at, simulate
from tests.study.test_study_cli import study

PROJ = Projector()
NOW = datetime(2017, 1, 1, 12, 0, tzinfo=UTC)
GRADES = GradeOrder(("I", "S", "E"))
Y = 180_000.0


def car(uid: int, x: float, area: str, y: float = Y, **kw: object) -> UnitState:
    lat, lng = PROJ.to_wgs84(x, y)
    fields: dict[str, object] = {
        "capabilities": frozenset({"response"}),
        "status": UnitStatus.AVAILABLE,
        **kw,
    }
    return UnitState(
        id=uid,
        callsign=f"{area}{uid}",
        unit_type="response_car",
        lat=lat,
        lng=lng,
        position_at=NOW,
        area_code=area,
        **fields,  # type: ignore[arg-type]
    )


def directory(*units: UnitState) -> UnitDirectory:
    d = UnitDirectory(PROJ, GRADES)
    d.load(units)
    return d


def item(iid: int, grade: str, x: float, area: str | None, y: float = Y, **needs: int) -> QueueItem:
    lat, lng = PROJ.to_wgs84(x, y)
    plan = tuple(Need(c, n) for c, n in (needs or {"response": 1}).items())
    return QueueItem(iid, grade, lat, lng, plan, area)


def plan(d: UnitDirectory, queue: list[QueueItem], policy: Policy | None = None) -> list[int]:
    extra = {} if policy is None else {"policy": policy}
    actions = plan_actions(
        queue, d, LinearEta(), NOW, stale_after_s=1800, divert_min_saving_s=120, **extra
    )
    return [a.unit_id for a in actions]


# ------------------------------------------------------------- own area first


def test_own_area_first_sends_the_incidents_own_car_unless_another_is_much_faster() -> None:
    # A border incident in A at 534 km: B's car 1 km east (160 s) is nearest, A's car
    # 2 km west (260 s) is 100 s slower, within the 120 s margin.
    d = directory(car(1, 532_000, "A"), car(2, 535_000, "B"))
    queue = [item(10, "I", 534_000, "A")]
    assert plan(d, queue) == [2]
    assert plan(d, queue, Policy.NEAREST) == [2]
    assert plan(d, queue, Policy.OWN_AREA) == [1]
    # A's car 3 km away (360 s) is 200 s slower: B's goes after all.
    far = directory(car(1, 531_000, "A"), car(2, 535_000, "B"))
    assert plan(far, queue, Policy.OWN_AREA) == [2]
    # An incident with no area known: nearest.
    assert plan(d, [item(10, "I", 534_000, None)], Policy.OWN_AREA) == [2]


def test_own_area_margin_is_configurable() -> None:
    d = directory(car(1, 532_000, "A"), car(2, 535_000, "B"))
    actions = plan_actions(
        [item(10, "S", 534_000, "A")],
        d,
        LinearEta(),
        NOW,
        stale_after_s=1800,
        divert_min_saving_s=120,
        policy=Policy.OWN_AREA,
        policy_margin_s=60,
    )
    assert [a.unit_id for a in actions] == [2]


# ------------------------------------------------------------- coverage aware


def test_coverage_keeps_a_boroughs_last_car_for_an_s_call_when_another_is_close() -> None:
    # S call in B at 536 km. B has one car (B 2 at 537 km: 160 s); A has two (A 1 at
    # 534 km: 260 s, A 3 far west). Coverage sends A 1 and leaves B its car.
    units = (car(1, 534_000, "A"), car(2, 537_000, "B"), car(3, 520_000, "A"))
    s_call = [item(10, "S", 536_000, "B")]
    assert plan(directory(*units), s_call) == [2]
    assert plan(directory(*units), s_call, Policy.COVERAGE) == [1]
    # An Immediate call takes the nearest whatever it leaves.
    assert plan(directory(*units), [item(10, "I", 536_000, "B")], Policy.COVERAGE) == [2]
    # With a second car in B, B 2 is no longer the last: the nearest goes.
    more = (*units, car(4, 545_000, "B"))
    assert plan(directory(*more), s_call, Policy.COVERAGE) == [2]
    # With A's car beyond the margin (4 km: 460 s, 300 s slower), B's last car goes.
    far = (car(1, 532_000, "A"), car(2, 537_000, "B"), car(3, 520_000, "A"))
    assert plan(directory(*far), s_call, Policy.COVERAGE) == [2]


def test_coverage_counts_cars_taken_earlier_in_the_same_pass() -> None:
    # Two S calls in B; B has two cars. The first takes B 2 (B keeps B 4); for the second
    # B 4 is now the last, and A 1 (not A's last: A 3 is far west) is within the margin.
    units = (
        car(1, 533_500, "A"),
        car(2, 537_000, "B"),
        car(4, 535_500, "B"),
        car(3, 520_000, "A"),
    )
    queue = [item(10, "S", 537_500, "B"), item(11, "S", 535_000, "B")]
    assert plan(directory(*units), queue) == [2, 4]
    assert plan(directory(*units), queue, Policy.COVERAGE) == [2, 1]
    # Without A 3, A 1 is A's last too: nothing is gained by moving the gap, B 4 goes.
    assert plan(directory(*units[:3]), queue, Policy.COVERAGE) == [2, 4]


# ------------------------------------------------------------- default unchanged


def quarter(x: float) -> str:
    """Four boroughs side by side, 2.5 km wide."""
    return "WXYZ"[min(3, max(0, int((x - 530_000) // 2_500)))]


def _fixed_world() -> tuple[UnitDirectory, list[QueueItem]]:
    rng = random.Random(14)
    caps = [
        frozenset({"response"}),
        frozenset({"response"}),
        frozenset({"armed", "response"}),
        frozenset({"traffic", "response"}),
        frozenset({"dog"}),
    ]
    units: list[UnitState] = []
    for uid in range(1, 41):
        x, y = rng.uniform(530_000, 540_000), rng.uniform(177_000, 183_000)
        roll = rng.random()
        kw: dict[str, object] = {"capabilities": rng.choice(caps)}
        if roll < 0.2:
            kw.update(status=UnitStatus.DISPATCHED, incident_id=900 + uid, incident_grade="S")
        elif roll < 0.3:
            kw.update(status=UnitStatus.ON_SCENE, incident_id=900 + uid, incident_grade="I")
        units.append(car(uid, x, quarter(x), y, **kw))
    queue: list[QueueItem] = []
    for iid in range(1, 13):
        x, y = rng.uniform(530_000, 540_000), rng.uniform(177_000, 183_000)
        grade = "I" if iid <= 4 else ("S" if iid <= 9 else "E")
        needs = {"response": 1 + iid % 3}
        if iid % 4 == 0:
            needs["armed"] = 1
        if iid % 5 == 0:
            needs["dog"] = 1
        queue.append(item(iid, grade, x, quarter(x), y, **needs))
    return directory(*units), queue


# What plan_actions gave on this world before policies existed (dispatch/engine.py at
# commit 3bc78aa); the default must not move a unit.
EXPECTED_DEFAULT = [
    Action(1, 30, 141, "I", None),
    Action(1, 25, 246, "I", None),
    Action(1, 32, 80, "I", 932),
    Action(2, 14, 111, "I", None),
    Action(2, 13, 133, "I", None),
    Action(2, 2, 179, "I", None),
    Action(3, 4, 186, "I", None),
    Action(4, 15, 118, "I", None),
    Action(4, 10, 123, "I", None),
    Action(4, 11, 203, "I", None),
    Action(5, 39, 222, "S", None),
    Action(5, 8, 385, "S", None),
    Action(5, 16, 461, "S", None),
    Action(5, 5, 554, "S", None),
    Action(6, 29, 122, "S", None),
    Action(7, 34, 75, "S", None),
    Action(7, 31, 300, "S", None),
    Action(8, 23, 243, "S", None),
    Action(8, 9, 315, "S", None),
    Action(8, 35, 481, "S", None),
    Action(8, 28, 594, "S", None),
    Action(9, 20, 85, "S", None),
    Action(10, 26, 131, "E", None),
    Action(10, 21, 226, "E", None),
    Action(10, 36, 587, "E", None),
    Action(11, 3, 726, "E", None),
    Action(11, 18, 839, "E", None),
    Action(11, 1, 907, "E", None),
]


@pytest.mark.parametrize("policy", [None, Policy.NEAREST])
def test_default_policy_plans_exactly_what_the_engine_planned_before(
    policy: Policy | None,
) -> None:
    d, queue = _fixed_world()
    extra = {} if policy is None else {"policy": policy}
    actions = plan_actions(
        queue, d, LinearEta(), NOW, stale_after_s=1800, divert_min_saving_s=120, **extra
    )
    assert actions == EXPECTED_DEFAULT


def test_the_policies_on_the_fixed_world_send_each_unit_once_and_serve_the_same() -> None:
    got: dict[Policy, list[Action]] = {}
    for policy in Policy:
        d, queue = _fixed_world()
        got[policy] = plan_actions(
            queue,
            d,
            LinearEta(),
            NOW,
            stale_after_s=1800,
            divert_min_saving_s=120,
            policy=policy,
            policy_margin_s=600,
        )

    def served(actions: list[Action]) -> list[tuple[int, int]]:
        return sorted((a.incident_id, a.divert_from_incident or 0) for a in actions)

    for actions in got.values():
        ids = [a.unit_id for a in actions]
        assert len(ids) == len(set(ids))
        assert served(actions) == served(EXPECTED_DEFAULT)
    assert got[Policy.NEAREST] == EXPECTED_DEFAULT
    own = got[Policy.OWN_AREA]
    assert own != EXPECTED_DEFAULT
    d, queue = _fixed_world()
    area = {i.incident_id: i.area_code for i in queue}

    def at_home(actions: list[Action]) -> int:
        return sum(1 for a in actions if d.units[a.unit_id].area_code == area[a.incident_id])

    assert at_home(own) > at_home(EXPECTED_DEFAULT)


# ------------------------------------------------------------- through the study


def _call(ref: str, t: float, x: float, area: str) -> CallRecord:
    lat, lng = at(x)
    return CallRecord(ref, t, lat, lng, "CONCERN_WELFARE", {"harm": "high"}, area_code=area)


def _unit(callsign: str, x: float, area: str) -> FleetUnit:
    lat, lng = at(x)
    return FleetUnit(callsign, "response_car", frozenset({"response"}), lat, lng, area)


def test_the_study_runs_the_policy_it_is_given() -> None:
    calls = [_call("c", 0, 534_000, "A")]
    fleet = [_unit("A1", 532_000, "A"), _unit("B1", 535_000, "B")]

    def sent(policy: Policy) -> list[str]:
        sim, result = simulate(calls, fleet, config=StudyConfig(policy=policy))
        return [sim.units[u].state.callsign for u in result.incidents[0].attached]

    assert sent(Policy.NEAREST) == ["B1"]
    assert sent(Policy.OWN_AREA) == ["A1"]

    def run(policy: Policy, seed: int):  # type: ignore[no-untyped-def]
        return simulate(calls, fleet, config=StudyConfig(policy=policy, seed=seed))[1]

    doc = compare_policies(run, [Policy.NEAREST, Policy.OWN_AREA], [0, 1])
    scene = doc["policies"]["own_area"]["I"]["scene_median_s"]
    # On scene 260 s against 160 s, the same on both seeds.
    assert scene["value"]["mean"] == 260 and scene["vs_nearest"] == {
        "mean": 100,
        "min": 100,
        "max": 100,
        "se": 0.0,
        "n": 2,
    }


# ------------------------------------------------------------- fleet sizing


def test_fleet_search_finds_the_smallest_fleet_meeting_the_target() -> None:
    # Borough A (near 500 km) has two Immediate calls at once, B (200 km east, far
    # beyond any 15 min reach) one. Three cars each to start; the smallest fleet with
    # every call reached in time is two in A and one in B, and both bind.
    calls = [
        _call("a1", 0, 500_050, "A"),
        _call("a2", 0, 500_150, "A"),
        _call("b1", 0, 700_050, "B"),
    ]
    fleet = [_unit(f"A{n}", 500_000 + 100 * n, "A") for n in range(3)] + [
        _unit(f"B{n}", 700_000 + 100 * n, "B") for n in range(3)
    ]
    seen: list[int] = []

    def run(units):  # type: ignore[no-untyped-def]
        seen.append(len(units))
        return simulate(calls, list(units))[1]

    assert within_target(run(fleet), "I") == 100.0
    doc = find_fleet(run, fleet, grade="I", target_pct=90.0)
    assert doc["met"] and not doc["stopped_by_max_runs"]
    assert doc["found"]["counts"] == {"A": 2, "B": 1}
    assert doc["found"]["pct"] == 100.0
    assert doc["binding"] == {
        "A": {"units": 2, "pct_with_one_fewer": pytest.approx(66.7)},
        "B": {"units": 1, "pct_with_one_fewer": pytest.approx(66.7)},
    }
    assert set(doc["fleet"]) == {"A0", "A1", "B0"}
    # A target the starting fleet misses is reported, not searched.
    short = find_fleet(run, fleet[:1] + fleet[3:], grade="I", target_pct=90.0)
    assert not short["met"] and short["runs"] == 1


# ------------------------------------------------------------- the command line

needs_sf = pytest.mark.skipif(not SF_WEEK.is_file(), reason="SF week not in shared data")


@needs_sf
def test_policies_side_by_side_through_the_cli(tmp_path: Path) -> None:
    done = study(
        tmp_path, "--hours", "3", "--policies", "nearest,own_area,coverage", "--seeds", "2"
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "policies.json").read_text())
    assert doc["seeds"] == [0, 1] and doc["baseline"] == "nearest"
    assert list(doc["policies"]) == ["nearest", "own_area", "coverage"]
    immediate = doc["policies"]["own_area"]["I"]["within_target_pct"]
    assert immediate["value"]["n"] == 2
    assert doc["policies"]["nearest"]["I"]["within_target_pct"]["vs_nearest"]["max"] == 0
    report = (tmp_path / "policies.md").read_text()
    assert "## Grade I" in report and "| own_area |" in report
    bad = study(tmp_path, "--hours", "1", "--policies", "nearest,fastest")
    assert bad.returncode != 0 and "--policies" in bad.stderr


@needs_sf
def test_fleet_search_through_the_cli_is_bounded_by_max_runs(tmp_path: Path) -> None:
    done = study(tmp_path, "--hours", "2", "--find-fleet", "--target", "I:50%", "--max-runs", "4")
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "fleet.json").read_text())
    assert doc["met"] and doc["runs"] == 4 and doc["stopped_by_max_runs"]
    assert doc["found"]["total"] <= doc["start"]["total"] - 1
    assert doc["found"]["pct"] >= 50
    assert "Fleet sizing" in (tmp_path / "fleet.md").read_text()
    bad = study(tmp_path, "--find-fleet", "--target", "I90")
    assert bad.returncode != 0 and "GRADE:PCT" in bad.stderr
