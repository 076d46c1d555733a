"""Demo data: users for each role, a fleet of 170 units over London's boroughs."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from cad.auth import service as auth_service
from dispatch import repository as dispatch_repo
from gis.areas import AreaSet

# Met Police borough codes as used in call signs (e.g. ZD11 is a Croydon response car).
BOROUGH_CODES: dict[str, str] = {
    "E09000001": "CL",
    "E09000002": "KG",
    "E09000003": "SX",
    "E09000004": "RY",
    "E09000005": "QK",
    "E09000006": "PY",
    "E09000007": "EK",
    "E09000008": "ZD",
    "E09000009": "XE",
    "E09000010": "YE",
    "E09000011": "RG",
    "E09000012": "GD",
    "E09000013": "FH",
    "E09000014": "YR",
    "E09000015": "QA",
    "E09000016": "KD",
    "E09000017": "XH",
    "E09000018": "TX",
    "E09000019": "NI",
    "E09000020": "BS",
    "E09000021": "VK",
    "E09000022": "LX",
    "E09000023": "PL",
    "E09000024": "VW",
    "E09000025": "KF",
    "E09000026": "JI",
    "E09000027": "TW",
    "E09000028": "MD",
    "E09000029": "ZT",
    "E09000030": "HT",
    "E09000031": "JC",
    "E09000032": "WW",
    "E09000033": "CW",
}

UNIT_TYPES: dict[str, list[str]] = {
    "response_car": ["response"],
    "armed_response": ["armed", "response"],
    "dog": ["dog"],
    "traffic": ["traffic", "response"],
    "public_order": ["public_order"],
    "cid": ["cid"],
    "foot": ["response"],
}


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    password: str
    unit: str | None = None


DEMO_USERS = [
    DemoUser("handler", "call_handler", "handler-999"),
    DemoUser("dispatcher", "dispatcher", "dispatcher-999"),
    DemoUser("supervisor", "supervisor", "supervisor-999"),
    DemoUser("admin", "admin", "admin-999-admin"),
    DemoUser("unit", "unit", "unit-999-unit", "CW11"),
    DemoUser("simulator", "admin", "simulator-999"),
    DemoUser("partner", "partner", "partner-999-eido"),
]


def demo_fleet(areas: AreaSet, seed: int = 999) -> list[dict[str, Any]]:
    """Three response cars and a foot patrol per borough; pan-London specialists."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    projector = areas.projector
    units: list[dict[str, Any]] = []

    def place(area_code: str | None) -> tuple[float, float]:
        area = areas.by_code(area_code) if area_code else None
        geom = area.geometry if area else areas.service_area
        metres = projector.project_geometry(geom)
        minx, miny, maxx, maxy = metres.bounds
        from shapely.geometry import Point

        for _ in range(200):
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if metres.contains(Point(x, y)):
                return projector.to_wgs84(x, y)
        p = metres.representative_point()
        return projector.to_wgs84(p.x, p.y)

    def add(callsign: str, unit_type: str, station: str, area_code: str | None) -> None:
        lat, lng = place(area_code)
        units.append(
            {
                "callsign": callsign,
                "unit_type": unit_type,
                "capabilities": UNIT_TYPES[unit_type],
                "home_station": station,
                "area_code": area_code,
                "status": "available",
                "lat": round(lat, 6),
                "lng": round(lng, 6),
                "position_at": now,
            }
        )

    codes = {a.code: a for a in areas.areas}
    for gss, prefix in BOROUGH_CODES.items():
        area = codes.get(gss)
        name = area.name if area else prefix
        for n in (11, 12, 13):
            add(f"{prefix}{n}", "response_car", name, gss if area else None)
        add(f"{prefix}21", "foot", name, gss if area else None)
    specialists = [
        ("Trojan", "armed_response", 14),
        ("Dog", "dog", 8),
        ("Traffic", "traffic", 10),
        ("TSG U", "public_order", 6),
        ("CID", "cid", 6),
    ]
    area_codes: list[str] = sorted(codes)
    for label, unit_type, count in specialists:
        for n in range(1, count + 1):
            home = area_codes[(n * 7) % len(area_codes)] if area_codes else None
            add(f"{label}{n}".replace(" ", ""), unit_type, f"{label} base", home)
    return units


async def seed_demo(conn: asyncpg.Connection, areas: AreaSet) -> dict[str, int]:
    fleet = demo_fleet(areas)
    for unit in fleet:
        await dispatch_repo.upsert_unit(conn, unit)
    for user in DEMO_USERS:
        await auth_service.add_user(
            conn, user.username, user.role, user.password, user.unit, demo=True
        )
    return {"units": len(fleet), "users": len(DEMO_USERS)}
