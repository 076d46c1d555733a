"""Partner subscriptions and their outbox.

The outbox runs on the leader, one worker per subscription, so a dead or slow partner
holds up only itself, and intake never waits on any partner (it only appends events).
A worker (1) reads the event log after its subscription's cursor, never past the safe
horizon, and for each incident changed there that matches the filter stores one
delivery holding the incident's EIDO document as it stands — the cursor moves in the
same transaction, so a change is queued exactly once; (2) sends, per incident, the oldest
undelivered delivery, signed, and marks it delivered only on a 2xx: at least once, in
order per incident. A failure retries with exponential backoff and jitter. Everything is
in PostgreSQL, so a restart or a new leader carries on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import structlog

from cad.db.pool import transaction
from cad.eido.mapping import to_eido
from cad.eido.service import agency
from cad.errors import Invalid, NotFound
from cad.events import repository as events_repo
from cad.events.horizon import Horizon
from cad.incidents import service as incidents_service
from cad.state import AppState
from cad.subscriptions import repository

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-CAD-Signature"
PAGE = 500
SEND_BATCH = 20


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`: the time is signed
    too, so a receiver can refuse an old delivery replayed at it."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff_s(attempts: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential with jitter: base · 2^(attempts−1), capped, times a factor in
    [0.5, 1): partners recovering together are not hit in lockstep."""
    return float(min(cap_s, base_s * 2 ** max(0, attempts - 1)) * rng.uniform(0.5, 1.0))


async def create(conn: asyncpg.Connection, state: AppState, body: Any, by: str) -> dict[str, Any]:
    known = {"grades": set(state.scheme), "types": set(state.catalogue),
             "areas": {a.code for a in state.areas.areas}}  # fmt: skip
    for name, values in (("grades", body.grades), ("types", body.types), ("areas", body.areas)):
        for i, value in enumerate(values):
            if value not in known[name]:
                raise Invalid(f"{name}.{i}", f"unknown {name[:-1]} {value!r}")
    sub_id = await repository.create(
        conn, body.name, body.url, body.secret, body.areas, list(body.grades), body.types, by
    )
    return (await list_all(conn, sub_id))[0]


async def list_all(conn: asyncpg.Connection, sub_id: int | None = None) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    out = []
    for r in await repository.with_stats(conn, sub_id):
        row = dict(r)
        oldest = row.pop("oldest_pending")
        row.pop("cursor_seq")
        row["lag_s"] = round((now - oldest).total_seconds(), 3) if oldest else None
        row["events_behind"] = max(0, int(row["events_behind"]))
        out.append(row)
    if sub_id is not None and not out:
        raise NotFound(f"no subscription {sub_id}")
    return out


async def end(conn: asyncpg.Connection, sub_id: int) -> dict[str, Any]:
    await list_all(conn, sub_id)
    await repository.end(conn, sub_id)
    return (await list_all(conn, sub_id))[0]


class Outbox:
    """The leader's partner deliveries: one worker per active subscription."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.settings = state.settings
        self.rng = random.Random()
        self.workers: dict[int, asyncio.Task[None]] = {}

    async def run(self) -> None:
        try:
            while True:
                async with self.state.pool.acquire() as conn:
                    active = set(await repository.active_ids(conn))
                for sub_id in active - self.workers.keys():
                    self.workers[sub_id] = asyncio.create_task(
                        self._worker(sub_id), name=f"outbox-{sub_id}"
                    )
                for sub_id in list(self.workers):
                    if sub_id not in active or self.workers[sub_id].done():
                        self.workers.pop(sub_id).cancel()
                await asyncio.sleep(max(1.0, self.settings.outbox_poll_s))
        finally:
            for task in self.workers.values():
                task.cancel()
            await asyncio.gather(*self.workers.values(), return_exceptions=True)

    async def _worker(self, sub_id: int) -> None:
        timeout = httpx.Timeout(self.settings.partner_timeout_s)
        horizon = Horizon()
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            while True:
                try:
                    queued = await self.fill(sub_id, horizon)
                    sent = await self.send_due(sub_id, client)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("outbox.pass_failed", subscription=sub_id,
                                error=type(exc).__name__)  # fmt: skip
                    queued = sent = 0
                    await asyncio.sleep(1.0)
                if not queued and not sent:
                    await asyncio.sleep(self.settings.outbox_poll_s)

    async def fill(self, sub_id: int, horizon: Horizon) -> int:
        """Queue a delivery for each matching incident changed after the cursor, never
        past the safe horizon (a seq committing late is never passed over)."""
        async with self.state.pool.acquire() as conn:
            safe = await horizon.advance(conn)
        async with transaction(self.state.pool) as conn:
            sub = await repository.lock(conn, sub_id)
            if sub is None or sub["ended_at"] is not None:
                return 0
            upto = min(safe, sub["cursor_seq"] + PAGE)
            if upto <= sub["cursor_seq"]:
                return 0
            events = await events_repo.events_between(conn, sub["cursor_seq"], upto + 1)
            last: dict[int, Any] = {}
            for e in events:
                if e.incident_id is not None:
                    last[e.incident_id] = e
            matching = await repository.incidents_matching(
                conn, list(last), sub["areas"], sub["grades"], sub["types"]
            )
            now = datetime.now(UTC)
            # One delivery per incident per page, as the incident stands after the page's
            # changes: each change is covered, and in order.
            for incident_id in sorted(matching, key=lambda i: last[i].seq):
                event = last[incident_id]
                detail = await incidents_service.detail(conn, self.state, incident_id)
                body = orjson.dumps(to_eido(detail, agency(self.state), now))
                await repository.add_delivery(conn, sub_id, incident_id, event.seq, event.at, body)
            await repository.advance(conn, sub_id, upto)
            return len(matching)

    async def send_due(self, sub_id: int, client: httpx.AsyncClient) -> int:
        async with self.state.pool.acquire() as conn:
            target = await repository.get_target(conn, sub_id)
            if target is None or target["ended_at"] is not None:
                return 0
            rows = await repository.due(conn, sub_id, SEND_BATCH)
        if rows:
            await asyncio.gather(*(self._send(client, target, row) for row in rows))
        return len(rows)

    async def _send(self, client: httpx.AsyncClient, target: asyncpg.Record, row: Any) -> None:
        body: bytes = bytes(row["body"])
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(target["secret"], ts, body),
            "X-CAD-Delivery": str(row["id"]),
            "X-CAD-Subscription": str(target["id"]),
            "X-CAD-Incident": str(row["incident_id"]),
            "X-CAD-Event-Seq": str(row["event_seq"]),
        }
        status: int | None = None
        error = ""
        try:
            response = await client.post(target["url"], content=body, headers=headers)
            status = response.status_code
            if 200 <= status < 300:
                async with transaction(self.state.pool) as conn:
                    await repository.delivered(conn, row["id"], target["id"], status)
                return
            error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        delay = backoff_s(
            row["attempts"] + 1,
            self.settings.partner_retry_base_s,
            self.settings.partner_retry_cap_s,
            self.rng,
        )
        with contextlib.suppress(asyncpg.PostgresError):
            async with transaction(self.state.pool) as conn:
                await repository.failed(conn, row["id"], target["id"], status, error, delay)
        log.info("outbox.retry", subscription=target["id"], delivery=row["id"],
                 error=error[:80], retry_in_s=round(delay, 2))  # fmt: skip
