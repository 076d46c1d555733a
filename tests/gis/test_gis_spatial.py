import itertools
import random
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gis.spatial import UnitIndex

SIDE = 40_000.0


def brute(
    pos: dict[int, tuple[float, float]],
    x: float,
    y: float,
    accept: Callable[[int], bool] | None = None,
    max_distance: float | None = None,
) -> list[tuple[int, float]]:
    ids = [i for i in pos if accept is None or accept(i)]
    if not ids:
        return []
    xy = np.array([pos[i] for i in ids])
    d = np.hypot(xy[:, 0] - x, xy[:, 1] - y).tolist()
    out = sorted(zip(ids, d, strict=True), key=lambda t: (t[1], t[0]))
    return [t for t in out if max_distance is None or t[1] <= max_distance]


def check(
    index: UnitIndex,
    pos: dict[int, tuple[float, float]],
    x: float,
    y: float,
    accept: Callable[[int], bool] | None = None,
    max_distance: float | None = None,
    k: int | None = None,
) -> None:
    expected = brute(pos, x, y, accept, max_distance)
    it = index.iter_nearest(x, y, accept, max_distance)
    got = list(it) if k is None else list(itertools.islice(it, k))
    if k is not None:
        expected = expected[:k]
    # Ties may come in any order: compare distances, then that each id's distance is its own.
    assert [d for _, d in got] == [d for _, d in expected]
    dist = dict(brute(pos, x, y))
    assert len({i for i, _ in got}) == len(got)
    for uid, d in got:
        assert dist[uid] == d
        assert accept is None or accept(uid)


def test_random_fleets_with_moves_removes_and_rebuilds() -> None:
    rng = random.Random(1234)
    index = UnitIndex(initial_radius_m=1_000)
    pos: dict[int, tuple[float, float]] = {}
    items = [(i, rng.uniform(0, SIDE), rng.uniform(0, SIDE)) for i in range(2_000)]
    index.bulk_load(items)
    pos.update({i: (x, y) for i, x, y in items})
    for round_no in range(60):
        for _ in range(rng.randint(0, 40)):
            op = rng.random()
            uid = rng.randrange(2_300)
            if op < 0.7:
                p = (rng.uniform(0, SIDE), rng.uniform(0, SIDE))
                index.upsert(uid, *p)
                pos[uid] = p
            else:
                index.remove(uid)
                pos.pop(uid, None)
        if round_no == 30:
            index.rebuild()
        assert len(index) == len(pos)
        mod, rem = rng.randint(1, 40), rng.randint(0, 3)
        accept = None if round_no % 4 == 0 else (lambda u, m=mod, r=rem: u % m == r)
        x, y = rng.uniform(-5_000, SIDE + 5_000), rng.uniform(-5_000, SIDE + 5_000)
        check(index, pos, x, y, accept, k=10)
        if round_no % 10 == 0:
            check(index, pos, x, y, accept)
            check(index, pos, x, y, accept, max_distance=rng.uniform(0, 8_000))


points = st.tuples(
    st.integers(0, 30),
    st.floats(0, 5_000, allow_nan=False),
    st.floats(0, 5_000, allow_nan=False),
)
ops = st.lists(st.one_of(points, st.integers(0, 30), st.just("rebuild")), min_size=0, max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    initial=st.lists(points, max_size=40),
    ops=ops,
    query=st.tuples(st.floats(-1_000, 6_000), st.floats(-1_000, 6_000)),
    mod=st.integers(1, 4),
    max_distance=st.one_of(st.none(), st.floats(0, 8_000)),
)
def test_matches_brute_force(
    initial: list[tuple[int, float, float]],
    ops: list[tuple[int, float, float] | int | str],
    query: tuple[float, float],
    mod: int,
    max_distance: float | None,
) -> None:
    # A small first ring forces many ring expansions on these small fleets.
    index = UnitIndex(initial_radius_m=50)
    index.bulk_load(initial)
    pos = {i: (x, y) for i, x, y in initial}
    for op in ops:
        if op == "rebuild":
            index.rebuild()
        elif isinstance(op, int):
            index.remove(op)
            pos.pop(op, None)
        elif isinstance(op, tuple):
            index.upsert(*op)
            pos[op[0]] = (op[1], op[2])
        check(index, pos, *query, lambda u: u % mod == 0, max_distance)
    check(index, pos, *query)
    assert len(index) == len(pos)
    for uid, p in pos.items():
        assert uid in index and index.position(uid) == p


def test_overlay_triggers_rebuild_and_stays_correct() -> None:
    rng = np.random.default_rng(7)
    index = UnitIndex()
    xy = rng.uniform(0, SIDE, (3_000, 2))
    index.bulk_load((i, x, y) for i, (x, y) in enumerate(xy.tolist()))
    pos = {i: (x, y) for i, (x, y) in enumerate(xy.tolist())}
    for step in range(400):  # well past the 150-entry threshold
        uid = int(rng.integers(3_000))
        p = (float(rng.uniform(0, SIDE)), float(rng.uniform(0, SIDE)))
        index.upsert(uid, *p)
        pos[uid] = p
        if step % 50 == 0:
            check(index, pos, *p, k=5)
    assert index._ov_count <= 151  # white-box: the overlay was folded into a new tree
    check(index, pos, SIDE / 2, SIDE / 2, lambda u: u % 7 == 0, k=20)


def test_freshness_move_is_seen_by_next_query() -> None:
    index = UnitIndex()
    index.bulk_load([(1, 0.0, 0.0), (2, 10_000.0, 10_000.0)])
    [(uid, d)] = index.nearest(9_000, 9_000, 1)
    assert uid == 2 and d == pytest.approx(1_414.2, abs=0.1)
    index.upsert(1, 9_000.0, 9_001.0)
    assert index.nearest(9_000, 9_000, 1) == [(1, 1.0)]
    index.remove(1)
    assert index.nearest(9_000, 9_000, 1)[0][0] == 2
    index.upsert(3, 9_000.0, 9_000.0)
    assert index.nearest(9_000, 9_000, 1) == [(3, 0.0)]
    assert index.position(3) == (9_000.0, 9_000.0) and index.position(1) is None


def test_iterator_is_a_snapshot_of_call_time() -> None:
    index = UnitIndex()
    index.bulk_load([(i, float(i * 100), 0.0) for i in range(10)])
    it = index.iter_nearest(0, 0)
    assert next(it) == (0, 0.0)
    index.upsert(9, 1.0, 0.0)
    index.remove(1)
    assert [u for u, _ in it] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert [u for u, _ in index.iter_nearest(0, 0)][:3] == [0, 9, 2]


def test_empty_and_edge_cases() -> None:
    index = UnitIndex()
    assert list(index.iter_nearest(0, 0)) == []
    assert index.nearest(0, 0, 3) == []
    index.remove(5)  # absent ids are a no-op
    index.upsert(1, 0, 0)
    assert index.nearest(0, 0, 0) == []
    assert index.nearest(5, 0, 1, max_distance=4.9) == []
    assert index.nearest(5, 0, 1, max_distance=5) == [(1, 5.0)]
    assert index.nearest(1e7, 1e7, 1)[0][0] == 1  # far outside the fleet: rings keep growing
    with pytest.raises(ValueError):
        index.upsert(2, float("nan"), 0)
    with pytest.raises(ValueError):
        list(index.iter_nearest(float("inf"), 0))


def test_accept_is_lazy() -> None:
    index = UnitIndex()
    index.bulk_load((i, float(i), 0.0) for i in range(1_000))
    calls: list[int] = []

    def accept(u: int) -> bool:
        calls.append(u)
        return True

    assert [u for u, _ in index.nearest(0, 0, 3, accept)] == [0, 1, 2]
    assert calls == [0, 1, 2]
