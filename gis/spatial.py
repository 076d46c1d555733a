"""Spatial index of unit positions for nearest-unit searches (the dispatch hot path)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import numpy.typing as npt
import shapely

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Widens each ring's query box a hair so a point at distance exactly r is never lost to
# rounding in x - r / x + r.
_BOX_SLACK_REL = 1e-9
_BOX_SLACK_ABS = 1e-6


class UnitIndex:
    """Unit positions in projected metres, keyed by unit id.

    A Shapely STRtree over a snapshot of positions answers most of a query; STRtrees are
    immutable, so ids changed since the snapshot live in a small overlay whose tree entries
    are masked out and whose current positions are scanned with numpy. The tree is rebuilt
    once the overlay exceeds max(64, 5% of the units), or on `rebuild()`.

    Freshness is immediate: an `upsert` or `remove` is visible to the very next query.
    """

    _tree: shapely.STRtree | None
    _snap_ids: IntArray
    _snap_xy: FloatArray
    _snap_stale: BoolArray
    _snap_index: dict[int, int]
    _ov_slot: dict[int, int]
    _ov_ids: IntArray
    _ov_xy: FloatArray
    _ov_alive: BoolArray
    _ov_count: int

    def __init__(self, initial_radius_m: float = 2000.0) -> None:
        if not initial_radius_m > 0:
            raise ValueError("initial_radius_m must be > 0")
        self.initial_radius_m = float(initial_radius_m)
        self._pos: dict[int, tuple[float, float]] = {}
        self._start_r = self.initial_radius_m
        self._reset_snapshot()

    # -- mutation ---------------------------------------------------------------------

    def upsert(self, unit_id: int, x: float, y: float) -> None:
        """Add a unit or move it."""
        fx, fy = float(x), float(y)
        if not (math.isfinite(fx) and math.isfinite(fy)):
            raise ValueError(f"unit {unit_id}: position must be finite, got ({x}, {y})")
        # Stationary units still report every few seconds; ignoring no-op moves keeps
        # them out of the overlay.
        if self._pos.get(unit_id) == (fx, fy):
            return
        self._pos[unit_id] = (fx, fy)
        slot = self._overlay_slot(unit_id)
        self._ov_xy[slot, 0] = fx
        self._ov_xy[slot, 1] = fy
        self._ov_alive[slot] = True
        self._maybe_rebuild()

    def remove(self, unit_id: int) -> None:
        """Forget a unit; removing an absent id is a no-op."""
        if self._pos.pop(unit_id, None) is None:
            return
        slot = self._overlay_slot(unit_id)
        self._ov_alive[slot] = False
        self._maybe_rebuild()

    def bulk_load(self, items: Iterable[tuple[int, float, float]]) -> None:
        """Replace every position (a later duplicate id wins)."""
        pos: dict[int, tuple[float, float]] = {}
        for unit_id, x, y in items:
            fx, fy = float(x), float(y)
            if not (math.isfinite(fx) and math.isfinite(fy)):
                raise ValueError(f"unit {unit_id}: position must be finite, got ({x}, {y})")
            pos[unit_id] = (fx, fy)
        self._pos = pos
        self.rebuild()

    def rebuild(self) -> None:
        """Rebuild the tree from the current positions and empty the overlay."""
        n = len(self._pos)
        self._reset_snapshot()
        if n == 0:
            return
        ids = np.fromiter(self._pos.keys(), dtype=np.int64, count=n)
        xy = np.array(list(self._pos.values()), dtype=np.float64).reshape(n, 2)
        self._snap_ids = ids
        self._snap_xy = xy
        self._snap_stale = np.zeros(n, dtype=np.bool_)
        self._snap_index = {int(i): k for k, i in enumerate(ids.tolist())}
        self._tree = shapely.STRtree(shapely.points(xy))
        # Start searches with a ring expected to hold ~16 units: big enough that a
        # typical query ends in the first ring, small enough not to sort hundreds.
        span = np.ptp(xy, axis=0) if n > 1 else np.zeros(2)
        area = max(float(span[0]) * float(span[1]), 1.0)
        self._start_r = min(self.initial_radius_m, max(100.0, math.sqrt(16 * area / (math.pi * n))))

    # -- reads ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._pos)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._pos

    def position(self, unit_id: int) -> tuple[float, float] | None:
        return self._pos.get(unit_id)

    def iter_nearest(
        self,
        x: float,
        y: float,
        accept: Callable[[int], bool] | None = None,
        max_distance: float | None = None,
    ) -> Iterator[tuple[int, float]]:
        """Yield (unit_id, distance_m) of accepted units, nearest first (ties by id).

        Lazy: `accept` runs only on candidates reached, so stop iterating as soon as you
        have enough. The iterator sees the index as it was when this method was called;
        later upserts do not disturb it.
        """
        fx, fy = float(x), float(y)
        if not (math.isfinite(fx) and math.isfinite(fy)):
            raise ValueError(f"query position must be finite, got ({x}, {y})")
        if max_distance is not None and not max_distance >= 0:
            raise ValueError("max_distance must be >= 0")
        # Copies are cheap (overlay <= a few hundred rows, stale mask 1 byte per unit) and
        # make the lazy iterator immune to concurrent moves; the snapshot arrays and tree
        # are never mutated, only replaced.
        m = self._ov_count
        ov_alive = self._ov_alive[:m]
        ov_ids = self._ov_ids[:m][ov_alive]
        ov_xy = self._ov_xy[:m][ov_alive]
        ov_d = np.hypot(ov_xy[:, 0] - fx, ov_xy[:, 1] - fy)
        stale = self._snap_stale.copy()
        return self._search(
            fx,
            fy,
            accept,
            max_distance,
            len(self._pos),
            self._tree,
            self._snap_ids,
            self._snap_xy,
            stale,
            ov_ids,
            ov_d,
        )

    def nearest(
        self,
        x: float,
        y: float,
        k: int,
        accept: Callable[[int], bool] | None = None,
        max_distance: float | None = None,
    ) -> list[tuple[int, float]]:
        """The k nearest accepted units as (unit_id, distance_m), nearest first."""
        out: list[tuple[int, float]] = []
        if k <= 0:
            return out
        for hit in self.iter_nearest(x, y, accept, max_distance):
            out.append(hit)
            if len(out) >= k:
                break
        return out

    # -- internals --------------------------------------------------------------------

    def _search(
        self,
        x: float,
        y: float,
        accept: Callable[[int], bool] | None,
        max_distance: float | None,
        n_live: int,
        tree: shapely.STRtree | None,
        snap_ids: IntArray,
        snap_xy: FloatArray,
        stale: BoolArray,
        ov_ids: IntArray,
        ov_d: FloatArray,
    ) -> Iterator[tuple[int, float]]:
        # Rings double in radius; each emits exactly the points with prev_r < d <= r,
        # sorted, so the overall order is exact and nothing is emitted twice.
        prev_r = -1.0
        r = self._start_r
        seen = 0
        while seen < n_live:
            last = max_distance is not None and r >= max_distance
            if max_distance is not None:
                r = min(r, max_distance)
            ids, ds = self._ring(x, y, prev_r, r, tree, snap_ids, snap_xy, stale, ov_ids, ov_d)
            seen += len(ids)
            if len(ids):
                order = np.lexsort((ids, ds))
                hits = zip(ids[order].tolist(), ds[order].tolist(), strict=True)
                if accept is None:
                    yield from hits
                else:
                    for uid, d in hits:
                        if accept(uid):
                            yield uid, d
            if last:
                return
            prev_r = r
            r *= 2.0

    @staticmethod
    def _ring(
        x: float,
        y: float,
        lo: float,
        hi: float,
        tree: shapely.STRtree | None,
        snap_ids: IntArray,
        snap_xy: FloatArray,
        stale: BoolArray,
        ov_ids: IntArray,
        ov_d: FloatArray,
    ) -> tuple[IntArray, FloatArray]:
        parts_ids: list[IntArray] = []
        parts_d: list[FloatArray] = []
        if tree is not None:
            h = hi * (1.0 + _BOX_SLACK_REL) + _BOX_SLACK_ABS
            idx = tree.query(shapely.box(x - h, y - h, x + h, y + h))
            idx = idx[~stale[idx]]
            pts = snap_xy[idx]
            d = np.hypot(pts[:, 0] - x, pts[:, 1] - y)
            keep = (d > lo) & (d <= hi)
            parts_ids.append(snap_ids[idx[keep]])
            parts_d.append(d[keep])
        if len(ov_d):
            keep_ov = (ov_d > lo) & (ov_d <= hi)
            parts_ids.append(ov_ids[keep_ov])
            parts_d.append(ov_d[keep_ov])
        if len(parts_ids) == 1:
            return parts_ids[0], parts_d[0]
        if not parts_ids:
            return ov_ids[:0], ov_d[:0]
        return np.concatenate(parts_ids), np.concatenate(parts_d)

    def _reset_snapshot(self) -> None:
        self._tree = None
        self._snap_ids = np.empty(0, dtype=np.int64)
        self._snap_xy = np.empty((0, 2), dtype=np.float64)
        self._snap_stale = np.empty(0, dtype=np.bool_)
        self._snap_index = {}
        cap = 64
        self._ov_slot = {}
        self._ov_ids = np.empty(cap, dtype=np.int64)
        self._ov_xy = np.empty((cap, 2), dtype=np.float64)
        self._ov_alive = np.zeros(cap, dtype=np.bool_)
        self._ov_count = 0

    def _overlay_slot(self, unit_id: int) -> int:
        slot = self._ov_slot.get(unit_id)
        if slot is not None:
            return slot
        si = self._snap_index.get(unit_id)
        if si is not None:
            self._snap_stale[si] = True
        slot = self._ov_count
        if slot == len(self._ov_ids):
            # Grow by replacement, never in place: live iterators hold views of the old
            # arrays.
            cap = 2 * slot
            self._ov_ids = np.resize(self._ov_ids, cap)
            self._ov_xy = np.resize(self._ov_xy, (cap, 2))
            self._ov_alive = np.concatenate((self._ov_alive, np.zeros(slot, dtype=np.bool_)))
        self._ov_ids[slot] = unit_id
        self._ov_slot[unit_id] = slot
        self._ov_count = slot + 1
        return slot

    def _maybe_rebuild(self) -> None:
        if self._ov_count > max(64, len(self._pos) // 20):
            self.rebuild()
