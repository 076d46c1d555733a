"""One elected process per deployment runs the relay, the auto-dispatch engine and the
safety timers. Election is a session advisory lock on a dedicated connection: if that
process dies or its connection drops, PostgreSQL frees the lock and another worker takes
over within a few seconds. Timers live in the database, so a takeover loses none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import structlog

from cad.alarms.service import check_timers
from cad.auth.service import end_expired_lockouts
from cad.db.pool import connect, transaction
from cad.events.relay import run_relay
from cad.events.writer import Event, append_event
from cad.state import AppState
from cad.subscriptions.service import Outbox
from dispatch.engine import EngineMemory, QueueItem, arrival, run_once

log = structlog.get_logger(__name__)

LEADER_LOCK_KEY = 0x0CAD_1EAD
# More arrivals than this between two passes: the queue read is as cheap as the list.
ARRIVALS_MAX = 5000


class Leader:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.is_leader = False
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Incidents created since the engine's last pass, from their events, so a pass
        # that has only these to plan need not read the queue. None: not known to be
        # complete (not yet leading, or more than ARRIVALS_MAX gathered): read it.
        self._arrived: list[QueueItem] | None = None

    def on_event(self, event: Event) -> None:
        # New work for the engine: wake it now rather than at the next tick.
        if event.type == "incident.created":
            self._arrive(event)
            self.wake.set()
        elif event.type in ("incident.returned_to_queue", "incident.graded"):
            # An incident that is not new may now need planning (back in the queue, or
            # graded up into an auto-dispatched grade): the next pass reads the queue.
            self._arrived = None
            self.wake.set()
        elif event.type == "unit.status" and event.data.get("to") == "available":
            self.wake.set()

    def _arrive(self, event: Event) -> None:
        if self._arrived is None:
            return
        d = event.data
        if d.get("status") == "closed":
            return  # a grade that closes on creation never queues
        item = None
        if event.incident_id is not None and d.get("status") == "pending":
            with contextlib.suppress(KeyError):
                item = arrival(
                    event.incident_id, d["grade"], d["type_code"], d["lat"], d["lng"],
                    self.state.plans,
                )  # fmt: skip
        if item is None or len(self._arrived) >= ARRIVALS_MAX:
            self._arrived = None  # not known as a queue item, or too many: read the queue
            return
        self._arrived.append(item)

    def _take_arrivals(self) -> list[QueueItem] | None:
        """What arrived since the last pass (None: read the queue), and start anew."""
        taken, self._arrived = self._arrived, []
        return taken

    async def start(self) -> None:
        self._task = asyncio.create_task(self._campaign(), name="leader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _campaign(self) -> None:
        settings = self.state.settings
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(settings.database_url)
                # Session lock on a dedicated connection: it lives exactly as long as we do.
                # Polls another process's lock: there is no event here to wait on.
                while not await conn.fetchval(  # noqa: ASYNC110
                    "SELECT pg_try_advisory_lock($1::bigint)", LEADER_LOCK_KEY
                ):
                    await asyncio.sleep(2.0)
                self.is_leader = True
                log.info("leader.elected")
                await self._lead(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("leader.lost", error=type(exc).__name__, detail=str(exc)[:200])
                await asyncio.sleep(1.0)
            finally:
                self.is_leader = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)

    async def _lead(self, conn: asyncpg.Connection) -> None:
        tasks = [
            asyncio.create_task(run_relay(conn, self.state.redis, self.state.stream_prefix)),
            asyncio.create_task(self._engine_loop()),
            asyncio.create_task(Outbox(self.state).run(), name="outbox"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        async with transaction(self.state.pool) as conn:
            yield conn

    async def _end_lockouts(self) -> None:
        auth = self.state.auth
        async with self._tx() as conn:
            await end_expired_lockouts(conn, auth.throttle if auth else None)

    async def _engine_loop(self) -> None:
        settings = self.state.settings
        last_timers = 0.0
        loop = asyncio.get_running_loop()
        memory = EngineMemory()
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=settings.engine_interval_s)
            except TimeoutError:
                pass
            # Under a burst, wake-ups come faster than passes: let them gather briefly so
            # one pass plans many new incidents (still well inside "within a second").
            await asyncio.sleep(0.05)
            self.wake.clear()
            arrived = self._take_arrivals()
            try:
                grades = self.state.auto_grades()
                if grades:
                    await run_once(
                        self._tx,
                        append_event,
                        self.state.directory,
                        self.state.plans,
                        self.state.eta,
                        datetime.now(UTC),
                        grades=grades,
                        stale_after_s=settings.stale_position_s,
                        divert_min_saving_s=settings.divert_min_saving_s,
                        memory=memory,
                        arrived=arrived,
                    )
                if loop.time() - last_timers >= 5.0:
                    last_timers = loop.time()
                    await check_timers(self._tx, append_event, self.state)
                    await self._end_lockouts()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("engine.pass_failed")
                await asyncio.sleep(1.0)
