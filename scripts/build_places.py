"""Refresh the London Fire Brigade stations in cad/places/data/places.json.

    .venv/bin/python scripts/build_places.py [--data ../shared/data]

places.json is a hand-edited data file (stations, landmarks); this script only replaces its
entries whose source is lfb_stations.csv with the stations in ../shared/data/lfb_stations.csv,
states the borough each one really lies in (the real boundaries, london_boroughs.geojson:
the LFB file's own "area" is the station ground's borough, which differs for New Malden),
and writes one place per line, sorted, so a re-run on the same input changes nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from shapely.geometry import Point, shape

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "cad" / "places" / "data" / "places.json"
LFB = "lfb_stations.csv"
# Lambeth River is a pier: its point is in the Thames, outside every borough, which would
# make the place unresolvable (outside the service area). Put it on the embankment.
ASHORE = {"H23": (51.4933, -0.1212)}


def _borough_of(polys: list[tuple[str, Any]], lat: float, lng: float) -> str | None:
    pt = Point(lng, lat)
    return next((name for name, g in polys if g.covers(pt)), None)


def lfb_places(data: Path) -> list[dict[str, Any]]:
    gj = json.loads((data / "london_boroughs.geojson").read_text())
    polys = [(f["properties"]["NAME"], shape(f["geometry"])) for f in gj["features"]]
    out = []
    with (data / LFB).open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            lat, lng = round(float(row["latitude"]), 6), round(float(row["longitude"]), 6)
            lat, lng = ASHORE.get(row["callsign"], (lat, lng))
            borough = _borough_of(polys, lat, lng)
            if borough is None:
                raise SystemExit(f"{LFB}: {row['name']} ({lat}, {lng}) is in no London borough")
            out.append(
                {
                    "kind": "station",
                    "name": f"{row['name']} Fire Station",
                    "aliases": [row["callsign"], f"{row['name']} fire"],
                    "lat": lat,
                    "lng": lng,
                    "borough": borough,
                    "precision_m": 50,
                    "source": LFB,
                }
            )
    return out


def dump(doc: dict[str, Any]) -> str:
    lines = ["{", f' "about": {json.dumps(doc["about"], ensure_ascii=False)},', ' "places": [']
    entries = [json.dumps(p, ensure_ascii=False) for p in doc["places"]]
    lines += [f"  {e}," for e in entries[:-1]] + [f"  {entries[-1]}"]
    lines += [" ]", "}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = p.parse_args()
    doc = json.loads(OUT.read_text())
    kept = [p for p in doc["places"] if p.get("source") != LFB]
    for p in kept:
        p.setdefault("source", "curated")
    fire = lfb_places(Path(args.data))
    doc["places"] = sorted(kept, key=lambda p: (p["kind"], p["name"])) + sorted(
        fire, key=lambda p: p["name"]
    )
    OUT.write_text(dump(doc))
    print(f"{OUT.relative_to(ROOT)}: {len(kept)} curated, {len(fire)} fire stations")


if __name__ == "__main__":
    main()
