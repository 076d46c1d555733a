"""Recommendation is the best by ETA among the units that qualify (checked by brute force)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from cad.grading import grade_order, load_scheme
from dispatch.directory import UnitDirectory
from dispatch.model import Need, UnitState
from dispatch.recommend import recommend
from dispatch.status import UnitStatus
from gis.eta import KolesarEta
from gis.projection import Projector

PROJECTOR = Projector()
GRADES = grade_order(load_scheme())
ETA = KolesarEta()
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TYPES = {
    "response_car": {"response"},
    "armed_response": {"armed", "response"},
    "dog": {"dog"},
    "traffic": {"traffic", "response"},
    "foot": {"response"},
}


def random_fleet(rng: random.Random, n: int) -> list[UnitState]:
    units = []
    for i in range(1, n + 1):
        unit_type = rng.choice(list(TYPES))
        status = rng.choices(list(UnitStatus), weights=[1, 6, 1, 1, 1, 1])[0]
        age = rng.choice([10, 60, 600, 4000]) if rng.random() > 0.05 else None
        units.append(
            UnitState(
                id=i,
                callsign=f"U{i}",
                unit_type=unit_type,
                capabilities=frozenset(TYPES[unit_type]),
                status=status,
                lat=None if age is None else 51.3 + rng.random() * 0.4,
                lng=None if age is None else -0.5 + rng.random() * 0.7,
                position_at=None if age is None else NOW - timedelta(seconds=age),
                incident_id=rng.randint(1, 5)
                if status in (UnitStatus.DISPATCHED, UnitStatus.EN_ROUTE, UnitStatus.ON_SCENE)
                else None,
                incident_grade=rng.choice("ISE")
                if status in (UnitStatus.DISPATCHED, UnitStatus.EN_ROUTE, UnitStatus.ON_SCENE)
                else None,
            )
        )
    return units


def brute_force(
    units: list[UnitState],
    lat: float,
    lng: float,
    needs: list[Need],
    stale_s: int,
    directory: UnitDirectory,
) -> dict[str, list[float]]:
    """ETAs of the units each need should get, by exhaustive search, same greedy order."""
    chosen: set[int] = set()
    out: dict[str, list[float]] = {}
    order = sorted(needs, key=lambda n: len(directory.available.get(n.capability, ())))
    for need in order:
        picked = by_eta(units, lat, lng, need, chosen, stale_s)[: need.count]
        chosen.update(uid for _, _, uid in picked)
        out[need.capability] = [round(e) for e, _, _ in picked]
    return out


def by_eta(
    units: list[UnitState], lat: float, lng: float, need: Need, chosen: set[int], stale_s: int
) -> list[tuple[float, float, int]]:
    """(ETA, metres, id) of every unit that could fill ``need`` and is not ``chosen``,
    best first: the exhaustive search both brute-force checks share."""
    x, y = PROJECTOR.to_metres(lat, lng)
    scored = []
    for u in units:
        if (
            u.status is not UnitStatus.AVAILABLE
            or need.capability not in u.capabilities
            or u.id in chosen
            or u.position_at is None
            or (NOW - u.position_at).total_seconds() > stale_s
        ):
            continue
        ux, uy = PROJECTOR.to_metres(u.lat, u.lng)  # type: ignore[arg-type]
        d = ((ux - x) ** 2 + (uy - y) ** 2) ** 0.5
        scored.append((ETA.eta_s(d, u.unit_type), d, u.id))
    scored.sort()
    return scored


@pytest.mark.parametrize("seed", range(40))
def test_recommendation_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    units = random_fleet(rng, rng.choice([20, 200, 1500]))
    directory = UnitDirectory(PROJECTOR, GRADES)
    directory.load(units)
    # Move some units after the load, so the indexes' overlays are exercised too.
    for unit in rng.sample(units, k=min(15, len(units))):
        if unit.position_at is not None:
            directory.apply_position(
                unit.id, 51.3 + rng.random() * 0.4, -0.5 + rng.random() * 0.7, NOW
            )
    lat, lng = 51.3 + rng.random() * 0.4, -0.5 + rng.random() * 0.7
    needs = rng.choice(
        [
            [Need("response", 1)],
            [Need("response", 2)],
            [Need("armed", 2), Need("response", 1)],
            [Need("dog", 1), Need("response", 2)],
            [Need("traffic", 1), Need("response", 1)],
        ]
    )
    stale_s = 1800
    rec = recommend(directory, lat, lng, needs, ETA, NOW, stale_after_s=stale_s, alternatives=2)
    got: dict[str, list[float]] = {}
    for cand in rec.recommended:
        assert cand.fills is not None
        got.setdefault(cand.fills, []).append(cand.eta_s)
    expected = brute_force(units, lat, lng, needs, stale_s, directory)
    for need in needs:
        assert sorted(got.get(need.capability, [])) == sorted(expected[need.capability]), (
            seed,
            need,
        )
        short = need.count - len(expected[need.capability])
        assert any(need.capability in s for s in rec.shortfalls) == (short > 0)
    # Nothing recommended is stale, busy or lacking the capability it fills.
    for cand in rec.recommended:
        unit = directory.units[cand.unit_id]
        assert unit.status is UnitStatus.AVAILABLE
        assert cand.fills in unit.capabilities
        assert cand.position_age_s is not None and cand.position_age_s <= stale_s
    assert len({c.unit_id for c in rec.recommended}) == len(rec.recommended)


def test_shortfall_explains_stale_and_busy_units() -> None:
    units = [
        UnitState(
            1,
            "T1",
            "armed_response",
            frozenset({"armed", "response"}),
            UnitStatus.AVAILABLE,
            51.50,
            -0.12,
            NOW - timedelta(seconds=30),
        ),
        UnitState(
            2,
            "T2",
            "armed_response",
            frozenset({"armed", "response"}),
            UnitStatus.AVAILABLE,
            51.51,
            -0.12,
            NOW - timedelta(hours=2),
        ),
        UnitState(
            3,
            "T3",
            "armed_response",
            frozenset({"armed", "response"}),
            UnitStatus.AVAILABLE,
            51.52,
            -0.12,
            NOW - timedelta(hours=3),
        ),
        UnitState(
            4,
            "T4",
            "armed_response",
            frozenset({"armed", "response"}),
            UnitStatus.EN_ROUTE,
            51.50,
            -0.13,
            NOW,
            incident_id=9,
            incident_grade="S",
        ),
    ]
    directory = UnitDirectory(PROJECTOR, GRADES)
    directory.load(units)
    rec = recommend(directory, 51.5, -0.12, [Need("armed", 2)], ETA, NOW, grade="I")
    assert [c.callsign for c in rec.recommended] == ["T1"]
    assert rec.shortfalls == [
        "2 armed needed, 1 available; 2 more have positions older than 30 min; 1 busy on other jobs"
    ]
    divert = [c for c in rec.alternatives if c.divert_from is not None]
    assert [c.callsign for c in divert] == ["T4"]
    assert "divert" in divert[0].label


def test_index_freshness_is_immediate() -> None:
    unit = UnitState(
        1, "A1", "response_car", frozenset({"response"}), UnitStatus.AVAILABLE, 51.60, -0.10, NOW
    )
    other = UnitState(
        2, "A2", "response_car", frozenset({"response"}), UnitStatus.AVAILABLE, 51.45, -0.10, NOW
    )
    directory = UnitDirectory(PROJECTOR, GRADES)
    directory.load([unit, other])
    first = recommend(directory, 51.45, -0.10, [Need("response", 1)], ETA, NOW)
    assert first.recommended[0].callsign == "A2"
    # A1 drives next to the incident; A2 goes on a job: the very next query sees both.
    directory.apply_position(1, 51.4501, -0.1001, NOW + timedelta(seconds=1))
    directory.apply_status(2, UnitStatus.DISPATCHED, 7, "S")
    second = recommend(directory, 51.45, -0.10, [Need("response", 1)], ETA, NOW)
    assert second.recommended[0].callsign == "A1"
    assert second.recommended[0].distance_m < 20
    # An older report arriving late does not move the unit back.
    assert not directory.apply_position(1, 51.60, -0.10, NOW)


def test_engine_path_skips_the_fleet_scan() -> None:
    units = [
        UnitState(
            1,
            "T2",
            "armed_response",
            frozenset({"armed", "response"}),
            UnitStatus.AVAILABLE,
            51.51,
            -0.12,
            NOW - timedelta(hours=2),
        ),
    ]
    directory = UnitDirectory(PROJECTOR, GRADES)
    directory.load(units)
    terse = recommend(directory, 51.5, -0.12, [Need("armed", 1)], ETA, NOW, explain=False)
    assert terse.shortfalls == ["1 armed needed, 0 available"]
    full = recommend(directory, 51.5, -0.12, [Need("armed", 1)], ETA, NOW)
    assert "older than 30 min" in full.shortfalls[0]


def test_grade_order_comes_from_the_scheme_and_ranks_unknowns_last() -> None:
    from dispatch.model import GradeOrder

    scheme = load_scheme()
    assert GRADES.codes == tuple(sorted(scheme, key=lambda c: scheme[c].priority))
    assert GRADES.most_urgent == "I"
    assert GRADES.outranks("I", "S") and GRADES.outranks("S", "E") and not GRADES.outranks("E", "S")
    assert not GRADES.outranks("R", None)  # no grade recorded: as the least urgent
    assert GRADES.outranks("R", "X") and not GRADES.outranks("X", "R")
    # A scheme with other codes: the dispatch rules follow it, not the Met's letters.
    other = GradeOrder(("P1", "P2"))
    assert other.most_urgent == "P1" and other.outranks("P1", "P2")
    with pytest.raises(ValueError):
        GradeOrder(("A", "A"))


@pytest.mark.parametrize("seed", range(12))
def test_recommendation_matches_brute_force_after_live_updates(seed: int) -> None:
    """Moves and status changes after the load (the live engine's path) keep the grid
    indexes exact: the same units, the same order and ETAs as an exhaustive search."""
    rng = random.Random(1000 + seed)
    units = random_fleet(rng, rng.choice([30, 400, 2500]))
    directory = UnitDirectory(PROJECTOR, GRADES)
    directory.load(units)
    for _ in range(rng.randint(50, 600)):
        unit = rng.choice(units)
        if rng.random() < 0.6:
            # Some moves stay in their cell, some jump across the city.
            if unit.lat is not None and rng.random() < 0.5:
                lat, lng = unit.lat + rng.uniform(-1e-4, 1e-4), unit.lng + rng.uniform(-1e-4, 1e-4)  # type: ignore[operator]
            else:
                lat, lng = 51.3 + rng.random() * 0.4, -0.5 + rng.random() * 0.7
            at = NOW - timedelta(seconds=rng.choice([0, 5, 3000]))
            directory.apply_position(unit.id, lat, lng, at)
        else:
            status = rng.choice(list(UnitStatus))
            directory.apply_status(unit.id, status, 3, "S")
    for _ in range(5):
        lat, lng = 51.3 + rng.random() * 0.4, -0.5 + rng.random() * 0.7
        needs = rng.choice(
            [[Need("response", 3)], [Need("armed", 1), Need("response", 2)], [Need("dog", 2)]]
        )
        rec = recommend(directory, lat, lng, needs, ETA, NOW, alternatives=3)
        chosen: set[int] = set()
        order = sorted(needs, key=lambda n: len(directory.available.get(n.capability, ())))
        expected: list[tuple[int, int, str | None]] = []
        alternatives: list[int] = []
        for need in order:
            scored = by_eta(units, lat, lng, need, chosen, 1800)
            for e, _, uid in scored[: need.count]:
                expected.append((uid, round(e), need.capability))
                chosen.add(uid)
            alternatives += [uid for _, _, uid in scored[need.count : need.count + 3]]
        got = [(c.unit_id, c.eta_s, c.fills) for c in rec.recommended]
        assert sorted(got, key=lambda t: (t[1], t[0])) == sorted(
            expected, key=lambda t: (t[1], t[0])
        ), seed
        # A need's alternatives are listed even if a later need takes one of them.
        assert {c.unit_id for c in rec.alternatives if c.label == "available"} == set(alternatives)


def test_grid_index_rings_cover_every_unit_once_within_their_bounds() -> None:
    from gis.spatial import GridIndex

    rng = random.Random(77)
    index = GridIndex(cell_m=50)
    pos: dict[int, tuple[float, float]] = {}
    for step in range(3000):
        uid = rng.randrange(400)
        if rng.random() < 0.8:
            # Clustered, spread out and far-flung positions.
            scale = rng.choice([100.0, 5_000.0, 200_000.0])
            p = (rng.uniform(-scale, scale), rng.uniform(-scale, scale))
            index.upsert(uid, *p)
            pos[uid] = p
        else:
            index.remove(uid)
            pos.pop(uid, None)
        if step == 1500:
            index.rebuild()
        if step % 50:
            continue
        assert len(index) == len(pos) and all(index.position(u) == p for u, p in pos.items())
        qx, qy = rng.uniform(-300_000, 300_000), rng.uniform(-300_000, 300_000)
        seen: list[int] = []
        last_bound = 0.0
        for cells, bound in index.iter_rings(qx, qy):
            assert bound >= last_bound
            for cell in cells:
                for ux, uy, uid in cell:
                    assert pos[uid] == (ux, uy)
                    # Every unit comes no earlier than its distance allows.
                    assert ((ux - qx) ** 2 + (uy - qy) ** 2) ** 0.5 >= last_bound
                    seen.append(uid)
            last_bound = bound
        assert sorted(seen) == sorted(pos)


def test_grid_index_far_queries_and_outliers_stay_cheap_and_exact() -> None:
    import time

    from gis.spatial import GridIndex

    rng = random.Random(5)
    index = GridIndex()
    items = [(i, rng.uniform(0, 20_000), rng.uniform(0, 20_000)) for i in range(2_000)]
    # One bad fix thousands of kilometres away must not make every cell huge.
    items.append((9_999, 5e6, -4e6))
    index.bulk_load(items)
    assert index.cell_m < 1_000
    pos = {i: (x, y) for i, x, y in items}
    for qx, qy in ((10_000.0, 10_000.0), (1e9, 1e9), (-3e6, 2e6), (5e6, -4e6 + 1)):
        started = time.perf_counter()
        seen = [uid for cells, _ in index.iter_rings(qx, qy) for cell in cells for *_, uid in cell]
        assert time.perf_counter() - started < 1.0
        assert sorted(seen) == sorted(pos)
    with pytest.raises(ValueError):
        index.upsert(1, float("nan"), 0.0)
    with pytest.raises(ValueError):
        next(index.iter_rings(float("inf"), 0.0))
