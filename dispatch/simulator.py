"""Simulated units for demos and load: they drive to their jobs at the ETA model's pace,
report positions, go en route / on scene / clear, and can generate calls.

It talks to the API over HTTP like a real in-car terminal, so it exercises the same
paths and needs nothing but a URL and a sign-in.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from gis.eta import KolesarEta
from gis.projection import Projector

log = structlog.get_logger(__name__)

# Call types the generator draws from, with rough weights from a London control room.
CALL_MIX: list[tuple[str, int]] = [
    ("ASB", 14),
    ("CONCERN_WELFARE", 12),
    ("VIOLENCE", 10),
    ("DOMESTIC", 10),
    ("THEFT", 8),
    ("SUSPICIOUS", 8),
    ("RTC_DAMAGE", 5),
    ("RTC_INJURY", 3),
    ("BURGLARY_IN_PROGRESS", 4),
    ("ROBBERY", 3),
    ("NOISE", 6),
    ("MISSING_PERSON", 4),
    ("KNIFE", 2),
    ("ALARM", 4),
    ("SHOPLIFTING_DETAINED", 3),
    ("ADVICE", 4),
]


@dataclass
class SimulatorConfig:
    url: str = "http://127.0.0.1:8000"
    username: str = "simulator"
    password: str = "simulator-999"
    tick_s: float = 3.0
    speedup: float = 1.0
    calls_per_min: float = 0.0
    duration_s: float = 0.0
    seed: int = 7
    on_scene_s: tuple[float, float] = (240.0, 900.0)
    ack_delay_s: tuple[float, float] = (3.0, 15.0)


@dataclass
class SimUnit:
    id: int
    callsign: str
    unit_type: str
    status: str
    lat: float
    lng: float
    incident_id: int | None = None
    target: tuple[float, float] | None = None
    next_change_at: float = 0.0
    home: tuple[float, float] = (0.0, 0.0)
    extra: dict[str, Any] = field(default_factory=dict)


class SessionAuth(httpx.Auth):
    """Bearer auth that outlives a 15-minute access token: on a 401 it spends the refresh
    token for a new pair (or signs in again if the session is gone) and retries once."""

    requires_response_body = True

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.access: str | None = None
        self.refresh: str | None = None

    def take(self, response: httpx.Response) -> bool:
        if response.status_code != 200:
            return False
        body = response.json()
        self.access, self.refresh = body["access_token"], body["refresh_token"]
        return True

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if request.url.path.startswith("/api/auth/"):
            yield request
            return
        if self.access is None:
            self.take((yield self._sign_in(request)))
        request.headers["Authorization"] = f"Bearer {self.access}"
        response = yield request
        if response.status_code != 401:
            return
        renewed = False
        if self.refresh is not None:
            renewed = self.take((yield self._renew(request)))
        if not renewed:
            renewed = self.take((yield self._sign_in(request)))
        if renewed:
            request.headers["Authorization"] = f"Bearer {self.access}"
            yield request

    def _sign_in(self, request: httpx.Request) -> httpx.Request:
        url = request.url.copy_with(path="/api/auth/token", query=None)
        return httpx.Request(
            "POST", url, data={"username": self.username, "password": self.password}
        )

    def _renew(self, request: httpx.Request) -> httpx.Request:
        url = request.url.copy_with(path="/api/auth/refresh", query=None)
        return httpx.Request("POST", url, json={"refresh_token": self.refresh})


class Simulator:
    def __init__(self, config: SimulatorConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client
        self.rng = random.Random(config.seed)
        self.projector = Projector()
        self.eta = KolesarEta()
        self.units: dict[int, SimUnit] = {}
        self.incident_points: dict[int, tuple[float, float]] = {}

    async def sign_in(self) -> None:
        auth = SessionAuth(self.config.username, self.config.password)
        response = await self.client.post(
            "/api/auth/token",
            data={"username": self.config.username, "password": self.config.password},
        )
        response.raise_for_status()
        auth.take(response)
        # Every later request renews the session itself when its token expires.
        self.client.auth = auth

    async def refresh_units(self) -> None:
        response = await self.client.get("/api/units")
        response.raise_for_status()
        for row in response.json():
            if row["lat"] is None:
                continue
            unit = self.units.get(row["id"])
            if unit is None:
                unit = SimUnit(
                    row["id"],
                    row["callsign"],
                    row["unit_type"],
                    row["status"],
                    row["lat"],
                    row["lng"],
                    home=(row["lat"], row["lng"]),
                )
                self.units[row["id"]] = unit
            if row["incident_id"] != unit.incident_id:
                unit.incident_id = row["incident_id"]
                unit.target = None
                unit.next_change_at = time.monotonic() + self.rng.uniform(*self.config.ack_delay_s)
            unit.status = row["status"]
            if unit.status == "off_duty":
                await self.set_status(unit, "available")

    async def target_of(self, incident_id: int) -> tuple[float, float] | None:
        if incident_id not in self.incident_points:
            response = await self.client.get(f"/api/incidents/{incident_id}")
            if response.status_code != 200:
                return None
            body = response.json()
            self.incident_points[incident_id] = (body["lat"], body["lng"])
        return self.incident_points[incident_id]

    async def set_status(self, unit: SimUnit, status: str) -> None:
        body: dict[str, Any] = {"status": status}
        if unit.incident_id is not None and status in ("en_route", "on_scene"):
            body["incident_id"] = unit.incident_id
        response = await self.client.post(f"/api/units/{unit.id}/status", json=body)
        if response.status_code == 200:
            unit.status = status
        else:
            log.info(
                "sim.status_refused", unit=unit.callsign, status=status, code=response.status_code
            )

    def move(self, unit: SimUnit, dt: float) -> None:
        if unit.target is None:
            return
        x, y = self.projector.to_metres(unit.lat, unit.lng)
        tx, ty = self.projector.to_metres(*unit.target)
        remaining = math.hypot(tx - x, ty - y)
        if remaining < 1:
            return
        # Average speed implied by the ETA model over the remaining trip.
        total = max(self.eta.eta_s(remaining, unit.unit_type) - 30.0, 1.0)
        step = min(remaining, remaining / total * dt)
        nx, ny = x + (tx - x) * step / remaining, y + (ty - y) * step / remaining
        unit.lat, unit.lng = self.projector.to_wgs84(nx, ny)

    async def step(self, dt: float) -> None:
        now = time.monotonic()
        await self.refresh_units()
        for unit in self.units.values():
            if unit.incident_id is None:
                continue
            if unit.status == "dispatched" and now >= unit.next_change_at:
                unit.target = await self.target_of(unit.incident_id)
                await self.set_status(unit, "en_route")
            elif unit.status == "en_route":
                if unit.target is None:
                    unit.target = await self.target_of(unit.incident_id)
                self.move(unit, dt)
                if unit.target is not None:
                    x, y = self.projector.to_metres(unit.lat, unit.lng)
                    tx, ty = self.projector.to_metres(*unit.target)
                    if math.hypot(tx - x, ty - y) < 30:
                        await self.set_status(unit, "on_scene")
                        unit.next_change_at = now + self.rng.uniform(*self.config.on_scene_s) / max(
                            self.config.speedup, 0.01
                        )
            elif unit.status == "on_scene" and now >= unit.next_change_at:
                await self.set_status(unit, "available")
                unit.incident_id = None
                unit.target = None
        await self.report_positions()

    async def report_positions(self) -> None:
        at = datetime.now(UTC).isoformat()
        batch = [
            {"unit_id": u.id, "lat": round(u.lat, 6), "lng": round(u.lng, 6), "at": at}
            for u in self.units.values()
        ]
        for i in range(0, len(batch), 1000):
            await self.client.post("/api/units/positions", json=batch[i : i + 1000])

    async def generate_call(self) -> None:
        types, weights = zip(*CALL_MIX, strict=True)
        code = self.rng.choices(types, weights)[0]
        base = self.rng.choice(list(self.units.values()))
        lat = base.home[0] + self.rng.gauss(0, 0.01)
        lng = base.home[1] + self.rng.gauss(0, 0.015)
        risk = {"ongoing": self.rng.random() < 0.3, "injuries": self.rng.random() < 0.1}
        await self.client.post(
            "/api/calls",
            json={
                "caller": {
                    "name": "Simulated caller",
                    "phone": f"07700 9{self.rng.randint(0, 99999):05d}",
                },
                "location": {"lat": lat, "lng": lng},
                "location_source": "aml",
                "incident_type": code,
                "description": f"Simulated {code.lower().replace('_', ' ')} call",
                "risk": risk,
            },
        )


async def run_simulator(config: SimulatorConfig) -> None:
    async with httpx.AsyncClient(base_url=config.url, timeout=10.0) as client:
        sim = Simulator(config, client)
        for attempt in range(60):
            try:
                await sim.sign_in()
                break
            except (httpx.HTTPError, OSError):
                await asyncio.sleep(1.0 if attempt < 59 else 0)
        else:
            raise SystemExit(f"simulator: cannot sign in at {config.url}")
        started = last = time.monotonic()
        next_call = started
        print(f"simulator: driving units against {config.url} (Ctrl-C to stop)")
        while config.duration_s <= 0 or time.monotonic() - started < config.duration_s:
            now = time.monotonic()
            try:
                await sim.step(now - last)
                if config.calls_per_min > 0 and now >= next_call and sim.units:
                    await sim.generate_call()
                    next_call = now + sim.rng.expovariate(config.calls_per_min / 60.0)
            except httpx.HTTPError as exc:
                log.warning("sim.http_error", error=type(exc).__name__)
            last = now
            await asyncio.sleep(config.tick_s)
