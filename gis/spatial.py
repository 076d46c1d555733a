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


class _Positions:
    """What both indexes answer from their unit → projected position map."""

    _pos: dict[int, tuple[float, float]]

    def __len__(self) -> int:
        return len(self._pos)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._pos

    def position(self, unit_id: int) -> tuple[float, float] | None:
        return self._pos.get(unit_id)


class UnitIndex(_Positions):
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


# Cells hold about this many units on average over the fleet's extent (more where it is
# dense): a query then reads a few dozen units, in few enough cells that walking the
# rings costs little next to scoring them.
_UNITS_PER_CELL = 1.5
_DEFAULT_CELL_M = 500.0
_MIN_CELL_M = 25.0
_MAX_CELL_M = 20_000.0
# A cell (cx, cy) is the int key cx * _STRIDE + cy, cheaper to hash than a tuple and
# moved to a neighbour by adding a constant; |cx|, |cy| < 2**31 keeps keys distinct,
# which positions within _MAX_ABS_M (far beyond any projected CRS) guarantee.
_STRIDE = 1 << 32
_MAX_ABS_M = 1e10
# Offsets of the keys on each ring of cells around a centre cell, built on first use.
_RINGS_CACHED = 256
_ring_offsets: list[list[int]] = []

# A cell's units as (x, y, unit_id): a list, as a scan is the hot path.
Cell = list[tuple[float, float, int]]


def _ring(r: int) -> list[int]:
    """Key offsets of the 8r cells at Chebyshev distance r from a cell (1 for r = 0)."""
    if r < len(_ring_offsets):
        return _ring_offsets[r]
    if r < _RINGS_CACHED:
        while len(_ring_offsets) <= r:
            _ring_offsets.append(_ring_keys(len(_ring_offsets)))
        return _ring_offsets[r]
    return _ring_keys(r)


def _ring_keys(r: int) -> list[int]:
    if r == 0:
        return [0]
    out = [dx * _STRIDE + dy for dx in (-r, r) for dy in range(-r, r + 1)]
    out += [dx * _STRIDE + dy for dy in (-r, r) for dx in range(-r + 1, r)]
    return out


# The centre cell and the ring around it.
_BLOCK = _ring(0) + _ring(1)


class GridIndex(_Positions):
    """Unit positions in projected metres on a uniform grid of square cells.

    Updates are O(1) and seen by the very next query; there is no snapshot to rebuild.
    A search walks square rings of cells outwards from the query point (`iter_rings`)
    and its caller stops once the distance bound of the rings walked rules out anything
    further, so a query reads a few dozen units whatever the fleet's size, even for a
    capability few units have (each capability has its own index, with its own cell size).

    Positions must be finite and within 1e10 m of the origin. The index is not to be
    changed while a ring iterator over it is in use.
    """

    def __init__(self, cell_m: float = _DEFAULT_CELL_M) -> None:
        if not (math.isfinite(cell_m) and _MIN_CELL_M <= cell_m <= _MAX_CELL_M):
            raise ValueError(f"cell_m must be in [{_MIN_CELL_M}, {_MAX_CELL_M}]")
        self._pos: dict[int, tuple[float, float]] = {}
        self._set_cell(float(cell_m))
        self._clear_cells()

    def _set_cell(self, cell_m: float) -> None:
        self.cell_m = cell_m
        self._inv = 1.0 / cell_m
        # Retune the cell size once the index has grown well past the size it was
        # chosen for (an index filled one upsert at a time).
        self._tuned_for = max(len(self._pos), 16)

    def _clear_cells(self) -> None:
        self._cells: dict[int, Cell] = {}
        # Each unit's cell key and its place in that cell's list.
        self._cell_of: dict[int, int] = {}
        self._slot: dict[int, int] = {}
        # Bounds of the cells occupied since the last re-bucketing (never shrunk, which
        # only makes a search look at empty cells at the edge).
        self._lo_x = self._lo_y = 0
        self._hi_x = self._hi_y = -1

    def _key(self, x: float, y: float) -> tuple[int, int]:
        # Also refuses NaN.
        if not (abs(x) <= _MAX_ABS_M and abs(y) <= _MAX_ABS_M):
            raise ValueError(f"position must be finite and within {_MAX_ABS_M:g} m, got ({x}, {y})")
        return math.floor(x * self._inv), math.floor(y * self._inv)

    # -- mutation ---------------------------------------------------------------------

    def upsert(self, unit_id: int, x: float, y: float) -> None:
        """Add a unit or move it."""
        fx, fy = float(x), float(y)
        old = self._pos.get(unit_id)
        if old == (fx, fy):
            return
        cx, cy = self._key(fx, fy)
        key = cx * _STRIDE + cy
        self._pos[unit_id] = (fx, fy)
        if old is not None:
            old_key = self._cell_of[unit_id]
            if old_key == key:
                self._cells[key][self._slot[unit_id]] = (fx, fy, unit_id)
                return
            self._take_out(unit_id, old_key)
        self._put(unit_id, cx, cy, fx, fy)
        if len(self._pos) > 4 * self._tuned_for:
            self.rebuild()

    def remove(self, unit_id: int) -> None:
        """Forget a unit; removing an absent id is a no-op."""
        if self._pos.pop(unit_id, None) is None:
            return
        self._take_out(unit_id, self._cell_of.pop(unit_id))

    def bulk_load(self, items: Iterable[tuple[int, float, float]]) -> None:
        """Replace every position (a later duplicate id wins)."""
        pos: dict[int, tuple[float, float]] = {}
        for unit_id, x, y in items:
            fx, fy = float(x), float(y)
            self._key(fx, fy)
            pos[unit_id] = (fx, fy)
        self._pos = pos
        self.rebuild()

    def rebuild(self) -> None:
        """Choose the cell size for the current positions and re-bucket them."""
        n = len(self._pos)
        cell = _DEFAULT_CELL_M
        if n > 1:
            # The extent of the middle 90% either way, so that a few far-flung positions
            # (a bad fix) do not make every cell huge.
            xs = sorted(p[0] for p in self._pos.values())
            ys = sorted(p[1] for p in self._pos.values())
            lo, hi = n // 20, n - 1 - n // 20
            # At least a cell's width either way, so a line of units still gets cells.
            w = max(xs[hi] - xs[lo], _MIN_CELL_M)
            h = max(ys[hi] - ys[lo], _MIN_CELL_M)
            inside = (hi - lo + 1) ** 2 / n
            cell = math.sqrt(w * h * _UNITS_PER_CELL / inside)
        self._set_cell(min(max(cell, _MIN_CELL_M), _MAX_CELL_M))
        self._clear_cells()
        for unit_id, (x, y) in self._pos.items():
            cx, cy = self._key(x, y)
            self._put(unit_id, cx, cy, x, y)

    def _put(self, unit_id: int, cx: int, cy: int, x: float, y: float) -> None:
        key = cx * _STRIDE + cy
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = []
        self._slot[unit_id] = len(cell)
        cell.append((x, y, unit_id))
        self._cell_of[unit_id] = key
        if self._hi_x < self._lo_x:
            self._lo_x = self._hi_x = cx
            self._lo_y = self._hi_y = cy
        else:
            self._lo_x = min(self._lo_x, cx)
            self._hi_x = max(self._hi_x, cx)
            self._lo_y = min(self._lo_y, cy)
            self._hi_y = max(self._hi_y, cy)

    def _take_out(self, unit_id: int, key: int) -> None:
        cell = self._cells[key]
        slot = self._slot.pop(unit_id)
        last = cell.pop()
        if slot < len(cell):
            cell[slot] = last
            self._slot[last[2]] = slot
        if not cell:
            del self._cells[key]

    # -- reads ------------------------------------------------------------------------

    def items(self) -> Iterator[tuple[int, float, float]]:
        """Every (unit_id, x, y), in no particular order."""
        for unit_id, (x, y) in self._pos.items():
            yield unit_id, x, y

    def iter_rings(self, x: float, y: float) -> Iterator[tuple[list[Cell], float]]:
        """Walk outwards from (x, y): yield the non-empty cells of each ring of cells not
        yet yielded ((x, y, unit_id) lists) and a lower bound of the distance from (x, y)
        to every unit in the cells not yet yielded (`math.inf` with the last).

        Every unit is yielded exactly once, nearer rings first; units within a ring come
        in no particular order. A walk that has looked at more cells than are occupied
        (a query far from every unit, or one that must read them all) ends with one
        sweep of the rest, so it never costs much more than a scan.
        """
        cells = self._cells
        cx0, cy0 = self._key(x, y)
        if not cells:
            return
        get = cells.get
        k0 = cx0 * _STRIDE + cy0
        cell_m = self.cell_m
        lox, hix, loy, hiy = self._lo_x, self._hi_x, self._lo_y, self._hi_y
        # Ring r walked, units not yet yielded lie beyond a side of the block walked
        # that still has occupied cells past it: until `near` every side does, and from
        # `far` on none does.
        west, east, south, north = cx0 - lox, hix - cx0, cy0 - loy, hiy - cy0
        near, far = min(west, east, south, north), max(west, east, south, north)
        gap = min(
            x - cx0 * cell_m, (cx0 + 1) * cell_m - x, y - cy0 * cell_m, (cy0 + 1) * cell_m - y
        )
        # Cell membership is decided in floating point: allow for its rounding.
        slack = 1e-9 * (abs(x) + abs(y) + (far + 1) * cell_m) + 1e-6
        # Rings wholly outside the occupied cells are empty: start at the first that is not.
        # A walk from inside starts with the 3 x 3 block around the query in one go.
        r = max(0, -near)
        first = r == 0
        r = max(r, 1)
        # Cell slots a walk may look at before it sweeps the remaining cells instead.
        budget = 2 * len(cells) + 8
        walked = -1  # the radius of the block yielded so far
        while True:
            budget -= len(_BLOCK) if first else 8 * r
            if budget < 0:
                yield self._outside(cx0, cy0, walked), math.inf
                return
            offsets = _BLOCK if first else _ring(r)
            first = False
            found = [c for o in offsets if (c := get(k0 + o)) is not None]
            if r >= far:
                yield found, math.inf
                return
            if r < near:
                bound = r * cell_m + gap
            else:
                bound = math.inf
                if r < west:
                    bound = x - (cx0 - r) * cell_m
                if r < east:
                    bound = min(bound, (cx0 + r + 1) * cell_m - x)
                if r < south:
                    bound = min(bound, y - (cy0 - r) * cell_m)
                if r < north:
                    bound = min(bound, (cy0 + r + 1) * cell_m - y)
            yield found, max(bound - slack, 0.0)
            walked = r
            r += 1

    def _outside(self, cx0: int, cy0: int, walked: int) -> list[Cell]:
        """The cells outside the block of radius `walked` around (cx0, cy0)."""
        out: list[Cell] = []
        for key, cell in self._cells.items():
            cx, cy = divmod(key, _STRIDE)
            if cy >= _STRIDE // 2:
                cx, cy = cx + 1, cy - _STRIDE
            if max(abs(cx - cx0), abs(cy - cy0)) > walked:
                out.append(cell)
        return out
