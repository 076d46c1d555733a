"""Partner subscriptions: a real local HTTP receiver that fails, times out and recovers
gets every change of every matching incident, in order per incident, signed — and
nothing is lost when the leader is killed with SIGKILL mid-delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx
import pytest

from cad.config import Settings
from tests.conftest import Api, call_body, login, running_api, start_server, wait_for

SECRET = "a shared secret for the partner"


@dataclass
class Receiver:
    """A partner's endpoint. `plan` says how to answer the next requests ("500",
    "timeout", "slow", anything else 200); after the plan it answers 200."""

    plan: list[str] = field(default_factory=list)
    hold_s: float = 2.0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, headers: Any, body: bytes) -> int:
        sig = dict(p.split("=", 1) for p in headers.get("X-CAD-Signature", "").split(","))
        mac = hmac.new(SECRET.encode(), f"{sig.get('t')}.".encode() + body, hashlib.sha256)
        ok = hmac.compare_digest(mac.hexdigest(), sig.get("v1", ""))
        record = {
            "delivery": int(headers["X-CAD-Delivery"]),
            "subscription": int(headers["X-CAD-Subscription"]),
            "incident": int(headers["X-CAD-Incident"]),
            "seq": int(headers["X-CAD-Event-Seq"]),
            "doc": json.loads(body),
        }
        with self.lock:
            if not ok:
                self.bad_signatures += 1
                return 401
            self.seen.append(record)
            mode = self.plan.pop(0) if self.plan else "ok"
        if mode == "500":
            return 500
        if mode in ("timeout", "slow"):
            time.sleep(self.hold_s)
            if mode == "timeout":
                return 200  # too late: the sender has given up and will resend
        with self.lock:
            self.accepted.append(record)
        return 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = rec.handle(self.headers, body)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender gave up on a "timeout"

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/eido"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


def quick(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"partner_timeout_s": 0.5, "partner_retry_base_s": 0.05,
                "partner_retry_cap_s": 0.4, "outbox_poll_s": 0.1}
    )  # fmt: skip


async def _last_seqs(pool_or_url: Any, incident_ids: list[int]) -> dict[int, int]:
    rows = await pool_or_url.fetch(
        "SELECT incident_id, max(seq) AS s FROM events WHERE incident_id = ANY($1::bigint[]) "
        "GROUP BY incident_id",
        incident_ids,
    )
    return {r["incident_id"]: r["s"] for r in rows}


def _in_order(accepted: list[dict[str, Any]], subscription: int = 1) -> dict[int, list[int]]:
    """Per incident, the seqs one subscription's partner took, checked to be in order."""
    by_incident: dict[int, list[int]] = {}
    for rec in accepted:
        if rec["subscription"] == subscription:
            by_incident.setdefault(rec["incident"], []).append(rec["seq"])
    for incident, seqs in by_incident.items():
        # A resend of one already taken may repeat a seq; never an older after a newer.
        assert seqs == sorted(seqs), (incident, seqs)
    return by_incident


async def test_every_change_arrives_in_order_through_failures(
    settings: Settings, receiver: Receiver
) -> None:
    receiver.plan = ["500", "500", "500", "timeout", "500", "timeout"]
    async with running_api(quick(settings), background=True) as api:
        sub = {"name": "ambulance", "url": receiver.url, "secret": SECRET}
        r = await api.as_("admin", "POST", "/api/subscriptions", json=sub)
        assert r.status_code == 201, r.text
        burglaries = {**sub, "name": "burglary desk", "types": ["BURGLARY"],
                      "url": receiver.url + "?only=burglary"}  # fmt: skip
        assert (
            await api.as_("admin", "POST", "/api/subscriptions", json=burglaries)
        ).status_code == 201
        ids = []
        for kind in ("VIOLENCE", "BURGLARY", "THEFT"):
            made = await api.as_("handler", "POST", "/api/calls", json=call_body(kind))
            ids.append(made.json()["incident"]["id"])
        for incident_id in ids:
            for text in ("first remark", "second remark"):
                body = {"text": f"{text} on {incident_id}"}
                await api.as_(
                    "dispatcher", "POST", f"/api/incidents/{incident_id}/remarks", json=body
                )
        close = {"result_code": "NFA", "remarks": "done"}
        await api.as_("dispatcher", "POST", f"/api/incidents/{ids[2]}/close", json=close)
        last = await _last_seqs(api.state.pool, ids)

        async def caught_up() -> bool:
            subs = (await api.as_("admin", "GET", "/api/subscriptions")).json()["subscriptions"]
            return all(s["pending"] == 0 and s["events_behind"] == 0 for s in subs) and all(
                max(
                    (
                        a["seq"]
                        for a in receiver.accepted
                        if a["incident"] == i and a["subscription"] == 1
                    ),
                    default=0,
                )
                >= last[i]
                for i in ids
            )

        await wait_for(caught_up, timeout=30)
        subs = (await api.as_("admin", "GET", "/api/subscriptions")).json()["subscriptions"]
    assert receiver.bad_signatures == 0
    by_incident = _in_order(receiver.accepted)
    for incident_id in ids:
        assert by_incident[incident_id][-1] == last[incident_id]
    # The documents are the incidents as they stood: the last one carries both remarks.
    final = next(a["doc"] for a in reversed(receiver.accepted) if a["incident"] == ids[0])
    assert [n["notesActionComments"] for n in final["notesComponent"]][-2:] == [
        f"first remark on {ids[0]}",
        f"second remark on {ids[0]}",
    ]
    assert any(s["last_error"] for s in subs)  # the failures were seen and reported
    burglary_sub = next(s for s in subs if s["name"] == "burglary desk")
    assert burglary_sub["delivered"] >= 1
    # The filtered subscription got the burglary only, in order too.
    assert set(_in_order(receiver.accepted, burglary_sub["id"])) == {ids[1]}


async def test_bad_subscriptions_are_refused(api: Api) -> None:
    for body, field_name in [
        ({"name": "x", "url": "ftp://partner.example/eido", "secret": SECRET}, "url"),
        ({"name": "x", "url": "https://partner.example/eido", "secret": "short"}, "secret"),
        ({"name": "x", "url": "https://partner.example/eido", "secret": SECRET,
          "grades": ["Z"]}, "grades.0"),
    ]:  # fmt: skip
        r = await api.as_("admin", "POST", "/api/subscriptions", json=body)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field_name, r.text
    assert (await api.as_("supervisor", "GET", "/api/subscriptions")).status_code == 403
    assert (await api.as_("admin", "DELETE", "/api/subscriptions/999")).status_code == 404
    ok = await api.as_(
        "admin", "POST", "/api/subscriptions",
        json={"name": "fire", "url": "https://fire.example/eido", "secret": SECRET},
    )  # fmt: skip
    assert "secret" not in ok.json()
    ended = await api.as_("admin", "DELETE", f"/api/subscriptions/{ok.json()['id']}")
    assert ended.status_code == 200 and ended.json()["ended_at"] is not None


async def test_nothing_is_lost_when_the_leader_is_killed_mid_delivery(
    settings: Settings, receiver: Receiver
) -> None:
    receiver.plan = ["slow"] * 3
    receiver.hold_s = 3.0
    env = {"CAD_PARTNER_TIMEOUT_S": "10", "CAD_PARTNER_RETRY_BASE_S": "0.05",
           "CAD_PARTNER_RETRY_CAP_S": "0.5", "CAD_OUTBOX_POLL_S": "0.1"}  # fmt: skip
    first = start_server(settings, name="outbox-first", **env)
    conn = await asyncpg.connect(settings.database_url)
    try:
        admin = await login(first.url, "admin")
        handler = await login(first.url, "handler")
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as c:
            r = await c.post("/api/subscriptions", headers={"Authorization": f"Bearer {admin}"},
                             json={"name": "force", "url": receiver.url, "secret": SECRET})  # fmt: skip
            assert r.status_code == 201, r.text
            ids = []
            for i in range(4):
                made = await c.post("/api/calls", headers={"Authorization": f"Bearer {handler}"},
                                    json=call_body("THEFT", lat=51.50 + i / 100))  # fmt: skip
                ids.append(made.json()["incident"]["id"])

        async def in_flight() -> bool:
            return bool(receiver.seen)

        await wait_for(in_flight, timeout=15)
        first.proc.kill()  # SIGKILL, mid-delivery: the partner is still holding the request
        first.proc.wait(10)
        second = start_server(settings, name="outbox-second", **env)
        try:
            last = await _last_seqs(conn, ids)

            async def all_delivered() -> bool:
                pending = await conn.fetchval(
                    "SELECT count(*) FROM deliveries WHERE delivered_at IS NULL"
                )
                got = {a["incident"] for a in receiver.accepted}
                return pending == 0 and got >= set(ids)

            await wait_for(all_delivered, timeout=40)
        finally:
            second.stop()
    finally:
        first.stop()
        await conn.close()
    by_incident = _in_order(receiver.accepted)
    for incident_id in ids:
        assert by_incident[incident_id][-1] == last[incident_id]
    assert receiver.bad_signatures == 0
