"""Locust scenarios: a control room at a real day's pace.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000            # web UI
    locust -f loadtests/locustfile.py --host URL --headless --run-time 120s \
        --load-profile seattle --peak-handlers 20 --ack-file acks.jsonl

Roles: CallHandler (intake), UnitUser (AVL + status buttons), Dispatcher (queue,
recommendations, E-grade assignments), ConsoleViewer (WebSocket event lag, reported as
request type "WS", name "event_lag"). The shape replays Seattle's mean hour-of-day call
profile (or the Montgomery snowstorm surge) compressed into the run.

Under gevent: never import cad/dispatch/gis or asyncio libraries here.
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import datetime
from typing import Any

import gevent
import websocket
from locust import LoadTestShape, between, constant, task

from loadtests.locust_common import CadUser, new_key
from loadtests.sources import load_profile, random_call

_rng = random.Random()


class CallHandler(CadUser):
    """A call handler recording 999 calls; the shape varies how many are on shift."""

    weight = 10
    username = "handler"

    def wait_time(self) -> float:
        # Exponential gaps: arrivals are bursty, not a metronome.
        return _rng.expovariate(1.0 / max(self.options.call_interval, 0.01))

    @task
    def record_call(self) -> None:
        key = new_key()
        self.post_call(random_call(_rng, tag=key), key)


class UnitUser(CadUser):
    """An AVL gateway and the units' status buttons (en route, on scene, clear)."""

    fixed_count = int(os.environ.get("CAD_LT_UNIT_USERS", "1"))
    username = "supervisor"
    wait_time = between(1, 3)

    def on_start(self) -> None:
        super().on_start()
        self.fleet: dict[int, tuple[float, float]] = {}
        self.fleet_at = 0.0
        # One report at once, not when the weighted task draw first picks it: a short run
        # must always exercise the AVL route (it was missing from a 10 s run once).
        self.positions()

    def refresh_fleet(self) -> None:
        r = self.client.get("/api/units", name="/api/units")
        if r.status_code == 200:
            self.fleet = {
                u["id"]: (u["lat"], u["lng"]) for u in r.json() if u.get("lat") is not None
            }
            self.fleet_at = time.monotonic()

    @task(3)
    def positions(self) -> None:
        if not self.fleet or time.monotonic() - self.fleet_at > 30:
            self.refresh_fleet()
        if not self.fleet:
            return
        ids = _rng.sample(sorted(self.fleet), min(100, len(self.fleet)))
        batch = []
        for uid in ids:
            lat, lng = self.fleet[uid]
            lat, lng = lat + _rng.gauss(0, 0.0004), lng + _rng.gauss(0, 0.0006)
            self.fleet[uid] = (lat, lng)
            batch.append({"unit_id": uid, "lat": round(lat, 6), "lng": round(lng, 6)})
        self.client.post("/api/units/positions", json=batch, name="/api/units/positions")

    @task(2)
    def status_buttons(self) -> None:
        for current, nxt in (
            ("dispatched", "en_route"),
            ("en_route", "on_scene"),
            ("on_scene", "available"),
        ):
            r = self.client.get(f"/api/units?status={current}", name=f"/api/units?status={current}")
            if r.status_code != 200 or not r.json():
                continue
            unit = _rng.choice(r.json())
            body: dict[str, Any] = {"status": nxt}
            if nxt != "available" and unit.get("incident_id"):
                body["incident_id"] = unit["incident_id"]
            with self.client.post(
                f"/api/units/{unit['id']}/status",
                json=body,
                name=f"/api/units/[id]/status {nxt}",
                catch_response=True,
            ) as resp:
                # 409: the simulator (or the engine) moved the unit first: a correct refusal.
                if resp.status_code in (200, 409):
                    resp.success()
                else:
                    resp.failure(f"{resp.status_code}: {resp.text[:200]}")


class Dispatcher(CadUser):
    """Watches the queue, reads recommendations, dispatches Extended-grade jobs by hand."""

    fixed_count = int(os.environ.get("CAD_LT_DISPATCHERS", "1"))
    username = "dispatcher"
    wait_time = between(1, 3)

    @task(2)
    def queue(self) -> None:
        self.client.get("/api/incidents?status=open&limit=100", name="/api/incidents?status=open")

    @task(1)
    def assign_extended(self) -> None:
        r = self.client.get(
            "/api/incidents?status=pending&grade=E&limit=20", name="/api/incidents?grade=E"
        )
        if r.status_code != 200 or not r.json():
            return
        incident = _rng.choice(r.json())
        rec = self.client.get(
            f"/api/incidents/{incident['id']}/recommendations",
            name="/api/incidents/[id]/recommendations",
        )
        if rec.status_code != 200 or not rec.json().get("recommended"):
            return
        unit_id = rec.json()["recommended"][0]["unit_id"]
        with self.client.post(
            f"/api/incidents/{incident['id']}/assignments",
            json={"unit_id": unit_id},
            name="/api/incidents/[id]/assignments",
            catch_response=True,
        ) as resp:
            # 409 is the designed answer when another dispatcher or the engine won the unit.
            if resp.status_code in (201, 409):
                resp.success()
            else:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")


class ConsoleViewer(CadUser):
    """A dispatcher's board on the WebSocket feed; measures commit → screen lag."""

    fixed_count = int(os.environ.get("CAD_LT_CONSOLES", "3"))
    username = "dispatcher"
    wait_time = constant(2)

    def on_start(self) -> None:
        super().on_start()
        self.ws: websocket.WebSocket | None = None
        self.last_seq: int | None = None
        self.reader: gevent.Greenlet | None = None
        self.connect()

    def on_stop(self) -> None:
        if self.reader is not None:
            self.reader.kill(block=False)
        if self.ws is not None:
            self.ws.close()

    def connect(self) -> None:
        token = self.client.headers["Authorization"].split(" ", 1)[1]
        url = self.host.replace("http", "ws", 1) + f"/ws/events?token={token}"
        if self.last_seq is not None:
            url += f"&since={self.last_seq}"
        started = time.perf_counter()
        try:
            self.ws = websocket.create_connection(url, timeout=10)
            hello = json.loads(self.ws.recv())
            if self.last_seq is None:
                self.last_seq = hello.get("last_seq")
            self.fire("connect", (time.perf_counter() - started) * 1000, None)
        except Exception as exc:  # every failure to connect is a reported failure
            self.ws = None
            self.fire("connect", (time.perf_counter() - started) * 1000, exc)
            return
        self.reader = gevent.spawn(self.read_loop, self.ws)

    def fire(self, name: str, ms: float, exc: Exception | None, length: int = 0) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=ms,
            response_length=length,
            exception=exc,
            context={},
        )

    def read_loop(self, ws: websocket.WebSocket) -> None:
        ws.settimeout(None)
        while True:
            try:
                raw = ws.recv()
            except websocket.WebSocketConnectionClosedException as exc:
                if self.environment.runner is not None and self.environment.runner.state in (
                    "stopping",
                    "stopped",
                ):
                    return
                self.fire("closed", 0, exc)
                self.ws = None
                return
            except Exception as exc:
                self.fire("closed", 0, exc)
                self.ws = None
                return
            received = time.time()
            if not raw:
                continue
            event = json.loads(raw)
            seq = event.get("seq")
            if seq is None:
                continue
            if self.last_seq is not None and seq <= self.last_seq:
                self.fire("duplicate", 0, AssertionError(f"seq {seq} after {self.last_seq}"))
                continue
            self.last_seq = seq
            lag_ms = (received - datetime.fromisoformat(event["at"]).timestamp()) * 1000
            self.fire("event_lag", max(lag_ms, 0.0), None, len(raw))

    @task
    def watch(self) -> None:
        # Reconnect from the last seq seen: the server replays what was missed.
        if self.ws is None:
            self.connect()


class ProfileShape(LoadTestShape):
    """Handlers on shift follow a real profile; units, dispatchers and consoles are fixed."""

    def __init__(self) -> None:
        super().__init__()
        self.profile: list[float] | None = None

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        if self.profile is None:
            self.profile = load_profile(options.load_profile if options else "seattle")
        duration = (options.lt_duration if options else 0) or (
            options.run_time if options and options.run_time else 600
        )
        t = self.get_run_time()
        if t >= duration:
            return None
        peak = max(self.profile) or 1.0
        i = min(int(t / duration * len(self.profile)), len(self.profile) - 1)
        handlers = max(
            1, round((options.peak_handlers if options else 20) * self.profile[i] / peak)
        )
        fixed = UnitUser.fixed_count + Dispatcher.fixed_count + ConsoleViewer.fixed_count
        return fixed + handlers, float(max(handlers, 10))
