"""(k) Partner delivery lag: calls at 10/s for a while, three partners subscribed to every
change, one of them failing half its requests. Lag is from the change's commit (the
event's time) to the partner's 200, for each partner, measured on this machine's clock.

The two healthy partners are the baseline: the failing one's lag is reported against
theirs, in the same run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx

SECRET = "bench partner shared secret"


class Partner:
    def __init__(self, name: str, fail_every: int = 0) -> None:
        self.name = name
        self.fail_every = fail_every
        self.count = 0
        self.accepted: dict[int, float] = {}  # delivery id -> first 200, epoch seconds
        self.lock = threading.Lock()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with partner.lock:
                    partner.count += 1
                    fail = partner.fail_every and partner.count % partner.fail_every == 0
                    if not fail:
                        delivery = int(self.headers["X-CAD-Delivery"])
                        partner.accepted.setdefault(delivery, time.time())
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/eido"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


async def _lags(db: str, partners: dict[int, Partner]) -> dict[str, Any]:
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch(
            "SELECT id, subscription_id, extract(epoch FROM event_at) AS at FROM deliveries"
        )
    finally:
        await conn.close()
    out: dict[str, Any] = {}
    for sub_id, partner in partners.items():
        lags = [
            (partner.accepted[r["id"]] - float(r["at"])) * 1000
            for r in rows
            if r["subscription_id"] == sub_id and r["id"] in partner.accepted
        ]
        expected = sum(1 for r in rows if r["subscription_id"] == sub_id)
        out[partner.name] = {
            "deliveries": expected,
            "delivered": len(lags),
            "requests": partner.count,
            "p50_ms": _pct(lags, 0.5),
            "p99_ms": _pct(lags, 0.99),
        }
    return out


def run(
    db: str,
    url: str,
    token: Callable[[str, str, str], str],
    rate: float = 10.0,
    seconds: float = 30.0,
) -> dict[str, Any]:
    partners = [Partner("healthy-1"), Partner("healthy-2"), Partner("half-failing", 2)]
    admin = token(url, "admin", "admin-999-admin")
    handler = token(url, "handler", "handler-999")
    by_sub: dict[int, Partner] = {}
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            for p in partners:
                r = c.post(
                    "/api/subscriptions",
                    headers={"Authorization": f"Bearer {admin}"},
                    json={"name": p.name, "url": p.url, "secret": SECRET},
                )
                r.raise_for_status()
                by_sub[int(r.json()["id"])] = p
            # Let the leader's outbox start a worker for each.
            time.sleep(2.0)
            started = time.monotonic()
            sent = 0
            while time.monotonic() - started < seconds:
                due = started + sent / rate
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                body = {
                    "caller": {"name": "Bench Caller", "phone": "07700 900000"},
                    "location": {
                        "lat": 51.45 + (sent % 97) / 500,
                        "lng": -0.25 + (sent % 89) / 300,
                    },
                    "location_source": "aml",
                    "incident_type": ("THEFT", "VIOLENCE", "ASB", "BURGLARY")[sent % 4],
                    "description": "bench call",
                    "risk": {},
                }
                c.post("/api/calls", headers={"Authorization": f"Bearer {handler}"}, json=body)
                sent += 1
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                subs = c.get(
                    "/api/subscriptions", headers={"Authorization": f"Bearer {admin}"}
                ).json()["subscriptions"]
                if all(s["pending"] == 0 and s["events_behind"] < 5 for s in subs):
                    break
                time.sleep(0.5)
        result = asyncio.run(_lags(db, by_sub))
        healthy = [result[p.name]["p99_ms"] for p in partners[:2] if result[p.name]["p99_ms"]]
        return {
            "calls": sent,
            "rate_per_s": rate,
            "seconds": seconds,
            "partners": result,
            "healthy_p99_ms": max(healthy) if healthy else None,
        }
    finally:
        for p in partners:
            p.stop()
