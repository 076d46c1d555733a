"""Build the London boundary package data (gis/data/*.geojson.gz) from ../shared/data.

    .venv/bin/python scripts/build_package_data.py [--data ../shared/data]

Reads the ONS / London Datastore boundary files (OGL v3: "Contains National Statistics data
© Crown copyright and database right 2012; Contains Ordnance Survey data © Crown copyright
and database right 2012") and writes compressed GeoJSON that keeps only what `gis.areas`
uses: `code` and `name`, plus `parent` (the borough GSS code) for wards.

- Coordinates are snapped to 6 decimals (~0.1 m) with shapely.set_precision, which keeps
  every polygon valid; the geometry is NOT simplified, since point-in-area runs on it.
- The borough file stops at the river bank (it excludes the tidal Thames) while the 2014
  wards run to the middle of the river. Each borough gains the parts of its own wards that
  lie outside every borough, so a point on the Thames belongs to the borough whose ward
  covers it instead of to no borough at all. Nothing already inside a borough changes.
- Output is deterministic (sorted by code, gzip mtime 0): re-running on the same input
  gives byte-identical files.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "gis" / "data"
BOROUGHS = ("london_boroughs.geojson", "london_boroughs.geojson.gz")
WARDS = ("london_wards_2014.geojson", "london_wards_2014.geojson.gz")
GRID = 1e-6  # degrees: 6 decimals


def _read(data_dir: Path, name: str) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = json.loads((data_dir / name).read_text())["features"]
    return features


def _snap(g: BaseGeometry) -> BaseGeometry:
    g = shapely.set_precision(shapely.make_valid(g), GRID)
    # set_precision leaves values like 0.33067900000000004; round the printed form too.
    return shapely.transform(g, lambda c: np.round(c, 6))


def _write(path: Path, features: list[dict[str, Any]]) -> None:
    features.sort(key=lambda f: f["properties"]["code"])
    body = json.dumps(
        {"type": "FeatureCollection", "features": features}, separators=(",", ":")
    ).encode()
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(body)
    print(f"{path}: {len(features)} features, {path.stat().st_size:,} bytes")


def _feature(props: dict[str, str], g: BaseGeometry) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": mapping(g)}


def build(data_dir: Path, out_dir: Path = OUT_DIR) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    wards = [
        (
            {
                "code": str(f["properties"]["GSS_CODE"]).strip(),
                "name": str(f["properties"]["NAME"]).strip(),
                "parent": str(f["properties"]["LB_GSS_CD"]).strip(),
            },
            _snap(shape(f["geometry"])),
        )
        for f in _read(data_dir, WARDS[0])
    ]
    boroughs = [
        (
            {
                "code": str(f["properties"]["GSS_CODE"]).strip(),
                "name": str(f["properties"]["NAME"]).strip(),
            },
            _snap(shape(f["geometry"])),
        )
        for f in _read(data_dir, BOROUGHS[0])
    ]
    land = shapely.union_all([g for _, g in boroughs])
    extended = []
    for props, g in boroughs:
        own = [wg for wp, wg in wards if wp["parent"] == props["code"]]
        river = shapely.union_all(own).difference(land) if own else None
        if river is not None and not river.is_empty:
            g = _snap(g.union(river))
        extended.append(_feature(props, g))
    _write(out_dir / BOROUGHS[1], extended)
    _write(out_dir / WARDS[1], [_feature(p, g) for p, g in wards])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    build(args.data)


if __name__ == "__main__":
    main()
