"""Keeps this worker's picture of the fleet (dispatch.directory) in step with the record.

Statuses arrive as events through the hub; positions through a Redis channel every
worker subscribes to (positions are too many for the event log). A periodic reload from
PostgreSQL is the safety net, and the only source while Redis is down.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from cad.events.writer import Event
from dispatch import repository as dispatch_repo
from dispatch.directory import UnitDirectory
from dispatch.model import UnitState
from dispatch.status import UnitStatus

log = structlog.get_logger(__name__)


def positions_channel(prefix: str) -> str:
    return f"{prefix}:positions"


def unit_state_from_row(row: asyncpg.Record) -> UnitState:
    return UnitState(
        id=row["id"],
        callsign=row["callsign"],
        unit_type=row["unit_type"],
        capabilities=frozenset(row["capabilities"]),
        status=UnitStatus(row["status"]),
        lat=row["lat"],
        lng=row["lng"],
        position_at=row["position_at"],
        incident_id=row["incident_id"],
        incident_grade=row["incident_grade"],
        status_at=row["status_at"],
        area_code=row["area_code"],
    )


class FleetSync:
    def __init__(
        self,
        directory: UnitDirectory,
        pool: asyncpg.Pool,
        redis: Redis,
        prefix: str,
        reload_s: float = 60.0,
        degraded_reload_s: float = 3.0,
    ) -> None:
        self.directory = directory
        self.pool = pool
        self.redis = redis
        self.channel = positions_channel(prefix)
        self.reload_s = reload_s
        self.degraded_reload_s = degraded_reload_s
        self.redis_ok = False
        self._tasks: list[asyncio.Task[None]] = []

    async def reload(self) -> None:
        async with self.pool.acquire() as conn:
            rows = await dispatch_repo.list_units(conn)
        self.directory.load(unit_state_from_row(r) for r in rows)

    async def start(self) -> None:
        await self.reload()
        self._tasks = [
            asyncio.create_task(self._subscribe_positions(), name="fleet-positions"),
            asyncio.create_task(self._reload_loop(), name="fleet-reload"),
        ]

    async def stop(self) -> None:
        # redis-py (8.1) can swallow a cancel that lands inside pubsub.subscribe/listen, and
        # the task then listens forever: cancel again until it has really ended.
        for task in self._tasks:
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.5)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def on_event(self, event: Event) -> None:
        if event.unit_id is None:
            return
        if event.type == "unit.assigned":
            self.directory.apply_status(
                event.unit_id,
                UnitStatus.DISPATCHED,
                event.incident_id,
                event.data.get("grade"),
                event.at,
            )
        elif event.type == "unit.status":
            to = UnitStatus(event.data["to"])
            self.directory.apply_status(
                event.unit_id, to, event.incident_id, event.data.get("grade"), event.at
            )

    async def publish_positions(self, reports: list[tuple[int, float, float, datetime]]) -> None:
        for unit_id, lat, lng, at in reports:
            self.directory.apply_position(unit_id, lat, lng, at)
        try:
            await self.redis.publish(
                self.channel,
                orjson.dumps([[u, la, ln, at.isoformat()] for u, la, ln, at in reports]),
            )
        except (RedisError, OSError) as exc:
            # Other workers pick the positions up from PostgreSQL on their next reload.
            log.warning("fleet.publish_failed", error=type(exc).__name__)

    async def _subscribe_positions(self) -> None:
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self.channel)
                self.redis_ok = True
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    self._apply(orjson.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.redis_ok:
                    log.warning("fleet.redis_down", error=type(exc).__name__)
                self.redis_ok = False
                await asyncio.sleep(1.0)

    def _apply(self, batch: list[list[Any]]) -> None:
        for unit_id, lat, lng, at in batch:
            self.directory.apply_position(int(unit_id), lat, lng, datetime.fromisoformat(at))

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reload_s if self.redis_ok else self.degraded_reload_s)
            try:
                await self.reload()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                log.warning("fleet.reload_failed", error=type(exc).__name__)
