"""(i) gazetteer latency over HTTP: /api/places type-ahead and /api/places/reverse.

20 concurrent keep-alive clients against `cad serve` (2 workers) with all 180,792 London
postcodes loaded, twice: typing (each client sends a request every 100 ms, a fast typist's
keystrokes: 200 requests/s in all) for the latency figures, and closed loop (each client
sends its next request as soon as the answer arrives) for the throughput at saturation,
where p99 is mostly queueing on 2 cores and reported only.
Type-ahead queries are what handlers type, keystroke by keystroke: every prefix of real
postcodes ("S", "SE", "SE1", "SE1 ", "SE1 7", … "SE1 7PB", also without the space and in
lower case) and of place names, misspelt ones too. Reverse points are real postcodes moved
up to 300 m. Baselines, same server, same clients, same run: GET /healthz (the HTTP floor)
and GET /api/grades (the same bearer-token check, no database).

    python -m bench.run --only places
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from importlib import resources
from typing import Any
from urllib.parse import quote

from pyproj import Transformer

from bench.loadgen import encode_request, replay

TYPING_EVERY_S = 0.1

NAMES = [
    "Waterloo Station", "watreloo", "King's Cross", "kings cros", "Paddington",
    "Tower of London", "Heathrow", "Camden Town", "Richmond", "Lambeth", "Bishop's",
    "Oxford Circus", "Wembley Stadium", "Stratford", "Clapham Junction", "London Bridge",
    "Croydon", "Brixton", "Canary Wharf", "Victoria",
]  # fmt: skip


def typeahead_queries(rng: random.Random, n_postcodes: int = 400) -> list[str]:
    """Keystroke prefixes of real postcodes and place names, as handlers type them."""
    data = resources.files("cad.places") / "data" / "london_postcodes.csv.gz"
    with gzip.open(io.BytesIO(data.read_bytes()), "rt", newline="") as f:
        postcodes = [row[0] for row in csv.reader(f)][1:]
    out: list[str] = []
    for pc in rng.sample(postcodes, n_postcodes):
        typed = pc if rng.random() < 0.6 else pc.replace(" ", "").lower()
        out += [typed[:k] for k in range(2, len(typed) + 1) if typed[:k].strip()]
    for name in NAMES:
        out += [name[:k] for k in range(3, len(name) + 1)]
    rng.shuffle(out)
    return out


def reverse_points(rng: random.Random, n: int = 2000) -> list[tuple[float, float]]:
    data = resources.files("cad.places") / "data" / "london_postcodes.csv.gz"
    with gzip.open(io.BytesIO(data.read_bytes()), "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    to_wgs = Transformer.from_crs(27700, 4326, always_xy=True)
    out = []
    for row in rng.sample(rows, n):
        x = float(row["easting"]) + rng.uniform(-300, 300)
        y = float(row["northing"]) + rng.uniform(-300, 300)
        lng, lat = to_wgs.transform(x, y)
        out.append((round(lat, 6), round(lng, 6)))
    return out


def load(
    port: int, token: str, paths: list[str], clients: int, seconds: float, every_s: float = 0.0
) -> dict[str, Any]:
    requests = [encode_request("GET", path, token) for path in paths]
    return replay(port, requests, clients, seconds, every_s)


def run(port: int, token: str, clients: int = 20, seconds: float = 10.0) -> dict[str, Any]:
    rng = random.Random(10)
    typed = [f"/api/places?q={quote(q)}" for q in typeahead_queries(rng)]
    points = [f"/api/places/reverse?lat={a}&lng={b}" for a, b in reverse_points(rng)]
    out: dict[str, Any] = {
        "clients": clients,
        "seconds": seconds,
        "queries": len(typed),
        "typing_every_ms": TYPING_EVERY_S * 1000,
    }
    load(port, token, typed[:2000], clients, 2.0)  # warm-up: connections, plans, caches
    for name, paths, tok in (
        ("healthz", ["/healthz"], ""),
        ("grades", ["/api/grades"], token),
        ("places", typed, token),
        ("reverse", points, token),
    ):
        out[name] = load(port, tok, paths, clients, seconds, TYPING_EVERY_S)
    for name, paths, tok in (("healthz", ["/healthz"], ""), ("places", typed, token)):
        out[f"{name}_closed_loop"] = load(port, tok, paths, clients, seconds / 2)
    return out
