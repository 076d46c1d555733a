"""Figure (b): recommendation over 10,000 units with status and capability filters.

Ours: `dispatch.recommend.recommend` on a `UnitDirectory` (per-capability grid indexes, ETA
early stop). Baselines over the very same units: numpy brute force (mask, distances,
argpartition, ETA on the survivors) and a PostGIS KNN query (`ORDER BY geom <-> point`,
GiST index, status and capability in the WHERE clause) through asyncpg.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np

from cad.grading import grade_order, load_scheme
from cad.seed import UNIT_TYPES
from dispatch.directory import UnitDirectory
from dispatch.model import Need, UnitState
from dispatch.recommend import recommend
from dispatch.status import UnitStatus
from gis.eta import KolesarEta
from gis.projection import Projector
from loadtests.sources import percentile, random_london_point

# Shares of cad.seed.UNIT_TYPES (the fleet's own types and capabilities), in its order.
TYPE_WEIGHTS = [50, 6, 5, 10, 5, 4, 20]
STATUS_WEIGHTS = [
    (UnitStatus.AVAILABLE, 60),
    (UnitStatus.EN_ROUTE, 15),
    (UnitStatus.ON_SCENE, 15),
    (UnitStatus.OFF_DUTY, 10),
]
# Response plans as in the catalogue: KNIFE, ROBBERY, BURGLARY.
PLANS = [
    [Need("armed", 1), Need("response", 2)],
    [Need("response", 2), Need("dog", 1)],
    [Need("response", 1)],
]


def fleet(n: int, seed: int = 10_000) -> list[UnitState]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    types = list(UNIT_TYPES)
    statuses, sw = zip(*STATUS_WEIGHTS, strict=True)
    units = []
    for i in range(1, n + 1):
        unit_type = rng.choices(types, TYPE_WEIGHTS)[0]
        lat, lng = random_london_point(rng)
        status = rng.choices(statuses, sw)[0]
        # A few positions are stale, as in a real fleet.
        age = rng.uniform(0, 60) if rng.random() > 0.03 else rng.uniform(2000, 4000)
        units.append(
            UnitState(
                id=i,
                callsign=f"B{i:05d}",
                unit_type=unit_type,
                capabilities=frozenset(UNIT_TYPES[unit_type]),
                status=status,
                lat=lat,
                lng=lng,
                position_at=now - timedelta(seconds=age),
            )
        )
    return units


def _stats(samples_us: list[float]) -> dict[str, Any]:
    return {
        "n": len(samples_us),
        "p50_us": round(percentile(samples_us, 50) or 0, 1),
        "p99_us": round(percentile(samples_us, 99) or 0, 1),
    }


def bench_ours(
    units: list[UnitState], queries: list[tuple[float, float, list[Need]]]
) -> dict[str, Any]:
    directory = UnitDirectory(Projector(), grade_order(load_scheme()))
    directory.load(units)
    eta = KolesarEta()
    now = datetime.now(UTC)
    for lat, lng, needs in queries[:50]:  # warm caches
        recommend(directory, lat, lng, needs, eta, now)
    samples = []
    for lat, lng, needs in queries:
        t = time.perf_counter()
        recommend(directory, lat, lng, needs, eta, now, include_busy=False)
        samples.append((time.perf_counter() - t) * 1e6)
    return _stats(samples)


class BruteForce:
    def __init__(self, units: list[UnitState]) -> None:
        proj = Projector()
        self.eta = KolesarEta()
        now = datetime.now(UTC)
        self.ids = np.array([u.id for u in units])
        xy = np.array([proj.to_metres(u.lat or 0, u.lng or 0) for u in units])
        self.x, self.y = xy[:, 0], xy[:, 1]
        fresh = np.array(
            [
                (now - u.position_at).total_seconds() <= 1800 if u.position_at else False
                for u in units
            ]
        )
        avail = np.array([u.status is UnitStatus.AVAILABLE for u in units]) & fresh
        self.types = [u.unit_type for u in units]
        self.masks = {
            cap: avail & np.array([cap in u.capabilities for u in units])
            for cap in ("response", "armed", "dog", "traffic", "public_order", "cid")
        }
        self.proj = proj

    def query(self, lat: float, lng: float, needs: list[Need], extra: int = 3) -> list[int]:
        qx, qy = self.proj.to_metres(lat, lng)
        chosen: list[int] = []
        for need in needs:
            idx = np.flatnonzero(self.masks[need.capability])
            d = np.hypot(self.x[idx] - qx, self.y[idx] - qy)
            k = min(need.count + extra + len(chosen), len(idx))
            near = idx[np.argpartition(d, k - 1)[:k]] if k else idx[:0]
            # ETA ranks by unit type, so the k nearest are re-ranked by ETA.
            etas = sorted(
                (
                    self.eta.eta_s(float(np.hypot(self.x[i] - qx, self.y[i] - qy)), self.types[i]),
                    int(self.ids[i]),
                )
                for i in near
            )
            picked = [u for _, u in etas if u not in chosen][: need.count]
            chosen.extend(picked)
        return chosen


def bench_numpy(
    units: list[UnitState], queries: list[tuple[float, float, list[Need]]]
) -> dict[str, Any]:
    bf = BruteForce(units)
    for lat, lng, needs in queries[:50]:
        bf.query(lat, lng, needs)
    samples = []
    for lat, lng, needs in queries:
        t = time.perf_counter()
        bf.query(lat, lng, needs)
        samples.append((time.perf_counter() - t) * 1e6)
    return _stats(samples)


async def bench_postgis(
    admin_url: str,
    db_name: str,
    units: list[UnitState],
    queries: list[tuple[float, float, list[Need]]],
) -> dict[str, Any]:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{db_name}"')
    finally:
        await admin.close()
    base = admin_url.rsplit("/", 1)[0]
    conn = await asyncpg.connect(f"{base}/{db_name}")
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        await conn.execute(
            """
            CREATE TABLE bench_units (
                id bigint PRIMARY KEY, unit_type text, capabilities text[], status text,
                position_at timestamptz, geom geometry(Point, 27700)
            )
            """
        )
        proj = Projector()
        rows = []
        for u in units:
            x, y = proj.to_metres(u.lat or 0, u.lng or 0)
            rows.append(
                (u.id, u.unit_type, list(u.capabilities), u.status.value, u.position_at, x, y)
            )
        await conn.executemany(
            "INSERT INTO bench_units VALUES ($1, $2, $3, $4, $5, ST_SetSRID(ST_MakePoint($6, $7), 27700))",
            rows,
        )
        await conn.execute("CREATE INDEX ON bench_units USING gist (geom)")
        await conn.execute("ANALYZE bench_units")
        stmt = await conn.prepare(
            """
            SELECT id, unit_type, ST_Distance(geom, q) AS d
            FROM bench_units, ST_SetSRID(ST_MakePoint($1, $2), 27700) AS q
            WHERE status = 'available' AND capabilities @> ARRAY[$3::text]
              AND position_at > now() - interval '30 minutes'
            ORDER BY geom <-> q LIMIT $4
            """
        )
        eta = KolesarEta()

        async def one(lat: float, lng: float, needs: list[Need]) -> list[int]:
            x, y = proj.to_metres(lat, lng)
            chosen: list[int] = []
            for need in needs:
                rows = await stmt.fetch(x, y, need.capability, need.count + 3 + len(chosen))
                ranked = sorted((eta.eta_s(r["d"], r["unit_type"]), r["id"]) for r in rows)
                chosen.extend([u for _, u in ranked if u not in chosen][: need.count])
            return chosen

        for lat, lng, needs in queries[:50]:
            await one(lat, lng, needs)
        samples = []
        for lat, lng, needs in queries:
            t = time.perf_counter()
            await one(lat, lng, needs)
            samples.append((time.perf_counter() - t) * 1e6)
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT TEXT) SELECT id FROM bench_units WHERE status = 'available' "
            "ORDER BY geom <-> ST_SetSRID(ST_MakePoint(530000, 180000), 27700) LIMIT 4"
        )
        out = _stats(samples)
        out["plan_first_line"] = str(plan).splitlines()[0] if plan else None
        return out
    finally:
        await conn.close()


def agreement(units: list[UnitState], queries: list[tuple[float, float, list[Need]]]) -> float:
    """Share of queries where ours and brute force choose the same units (sanity check)."""
    directory = UnitDirectory(Projector(), grade_order(load_scheme()))
    directory.load(units)
    eta = KolesarEta()
    now = datetime.now(UTC)
    bf = BruteForce(units)
    same = 0
    for lat, lng, needs in queries:
        ours = {c.unit_id for c in recommend(directory, lat, lng, needs, eta, now).recommended}
        same += ours == set(bf.query(lat, lng, needs))
    return same / len(queries)


def run(
    admin_url: str, n_units: int = 10_000, n_queries: int = 2000, postgis: bool = True
) -> dict[str, Any]:
    units = fleet(n_units)
    rng = random.Random(5)
    queries = [(*random_london_point(rng), PLANS[i % len(PLANS)]) for i in range(n_queries)]
    result: dict[str, Any] = {
        "units": n_units,
        "queries": n_queries,
        "ours": bench_ours(units, queries),
        "numpy": bench_numpy(units, queries),
        "same_choice_as_brute_force": round(agreement(units, queries[:300]), 3),
    }
    if postgis:
        try:
            result["postgis"] = asyncio.run(
                bench_postgis(
                    admin_url, "cad_bench_postgis", units, queries[: min(n_queries, 1000)]
                )
            )
        except (OSError, asyncpg.PostgresError) as exc:
            result["postgis"] = {"error": f"{type(exc).__name__}: {exc}"}
    return result
