"""Figure (h): point → borough + ward, one point at a time, as intake and unit positions do.

Ours: `AreaSet.area_for` on the built-in London boroughs and wards (grid index, prepared
polygons only in cells a boundary crosses). Baseline in the same process over the very same
points: `AreaSet.area_for_reference`, the plain STRtree + prepared-polygon lookup.

Points: real postcode positions (OS Code-Point, ../shared/data), so boundary-dense inner
London weighs as much as calls do; a sample of uniform points over the service area's box
is timed too, as a check that the figure does not hinge on where postcodes lie.

    python -m bench.areas [--points 20000]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Transformer

from gis.areas import Area, AreaSet
from loadtests.sources import percentile

POSTCODES = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / ("london_postcodes_codepoint_2025.csv")
)


def _postcode_points(n: int, seed: int) -> list[tuple[float, float]]:
    with POSTCODES.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        ie, i_n = header.index("easting"), header.index("northing")
        en = np.array([(float(r[ie]), float(r[i_n])) for r in reader])
    pick = np.random.default_rng(seed).choice(len(en), min(n, len(en)), replace=False)
    lng, lat = Transformer.from_crs(27700, 4326, always_xy=True).transform(en[pick, 0], en[pick, 1])
    return list(zip(np.asarray(lat).tolist(), np.asarray(lng).tolist(), strict=True))


def _uniform_points(areas: AreaSet, n: int, seed: int) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = areas.service_area.bounds
    rng = np.random.default_rng(seed)
    return list(zip(rng.uniform(y0, y1, n).tolist(), rng.uniform(x0, x1, n).tolist(), strict=True))


Lookup = Callable[[float, float], Area | None]


def _time(points: list[tuple[float, float]], borough: Lookup, ward: Lookup) -> dict[str, Any]:
    for lat, lng in points[:500]:  # warm caches and branch predictors alike
        borough(lat, lng)
        ward(lat, lng)
    clock = time.perf_counter_ns
    samples: list[float] = []
    for lat, lng in points:
        t0 = clock()
        borough(lat, lng)
        ward(lat, lng)
        samples.append((clock() - t0) / 1000)
    samples.sort()
    return {
        "p50_us": round(percentile(samples, 50), 2),
        "p99_us": round(percentile(samples, 99), 2),
        "max_us": round(samples[-1], 1),
        "mean_us": round(sum(samples) / len(samples), 2),
    }


def run(n_points: int = 20_000, seed: int = 10) -> dict[str, Any]:
    t0 = time.perf_counter()
    boroughs = AreaSet.london_default()
    t1 = time.perf_counter()
    wards = AreaSet.london_wards()
    t2 = time.perf_counter()
    points = _postcode_points(n_points, seed)
    uniform = [p for p in _uniform_points(boroughs, n_points // 4, seed) if boroughs.contains(*p)]
    # Same answers or the comparison means nothing.
    for lat, lng in points[:2000]:
        assert boroughs.area_for(lat, lng) == boroughs.area_for_reference(lat, lng)
        assert wards.area_for(lat, lng) == wards.area_for_reference(lat, lng)
    return {
        "points": len(points),
        "build_s": {"boroughs": round(t1 - t0, 2), "wards": round(t2 - t1, 2)},
        "ours": _time(points, boroughs.area_for, wards.area_for),
        "reference": _time(points, boroughs.area_for_reference, wards.area_for_reference),
        "uniform": {
            "points": len(uniform),
            "ours": _time(uniform, boroughs.area_for, wards.area_for),
            "reference": _time(uniform, boroughs.area_for_reference, wards.area_for_reference),
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.areas", description=__doc__)
    p.add_argument("--points", type=int, default=20_000)
    args = p.parse_args()
    print(json.dumps(run(args.points), indent=2))


if __name__ == "__main__":
    main()
