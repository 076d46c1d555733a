"""Per-worker fan-out of committed events to WebSocket consoles.

Source of events, fastest first: the Redis stream the relay fills; if Redis is down or
quiet, PostgreSQL itself (polled, never past the safe horizon: see horizon.py). Either way the hub hands out every committed event
exactly once and in seq order: a jump in seq is filled from PostgreSQL before anything
after it is delivered (a jump is usually a rolled-back seq, which the fill finds empty).

Subscribers get bounded queues. A console that cannot keep up is dropped with a reason
and reconnects with ``since=`` to catch up from PostgreSQL, instead of slowing everyone
(broadcaster's unbounded queues) or silently losing events.

Subscribers are grouped by what they get (filter, batch framing, account events): each
delivery cycle (one XREAD reply or one fill from PostgreSQL) is matched once per group,
each event is encoded at most once per worker, and a batch group gets one frame per cycle,
so the work grows with the number of distinct filters, not with the number of sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from cad.events import repository
from cad.events.filters import NO_FILTER, EventFilter, is_account_event
from cad.events.horizon import Horizon
from cad.events.writer import Event

log = structlog.get_logger(__name__)


def stream_key(prefix: str) -> str:
    return f"{prefix}:events"


def encode_event(event: Event) -> bytes:
    return orjson.dumps(event.to_dict())


BATCH_HEAD = b'{"type":"batch","events":['
BATCH_TAIL = b"]}"


def batch_frame(encoded: list[bytes]) -> bytes:
    """``{"type":"batch","events":[...]}`` from events already encoded: joining bytes,
    so an event in a batch costs no second encode."""
    return BATCH_HEAD + b",".join(encoded) + BATCH_TAIL


@dataclass(frozen=True, slots=True, eq=False)
class Delivery:
    """One frame for a group of subscribers, built once per worker: one event's JSON, or
    (batch mode) every event of the group's filter in one delivery cycle. The events go
    along so a console can de-duplicate against its catch-up by seq; ``upto`` is where
    the frame leaves the subscriber: every event up to it that matches was in this frame
    or an earlier one."""

    events: tuple[Event, ...]
    payload: bytes
    upto: int
    batch: bool = False


@dataclass(frozen=True, slots=True)
class GroupKey:
    """Subscribers that get the same frames: the same filter, the same framing, the same
    view of account events (a rule of the role, see filters.ACCOUNT_EVENTS)."""

    filter: EventFilter = NO_FILTER
    batch: bool = False
    accounts: bool = True

    def admits(self, event: Event) -> bool:
        return (self.accounts or not is_account_event(event)) and self.filter.matches(event)


@dataclass(frozen=True, slots=True)
class Positions:
    """Unit positions for staff consoles (unsequenced, only units that moved), encoded
    once per worker per push."""

    payload: bytes


# What a console's queue holds: frames, position pushes, and None (wake up: closing).
Item = Delivery | Positions | None


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[Item]
    max_size: int
    key: GroupKey = GroupKey()
    dropped_reason: str | None = None
    positions: bool = False

    def offer(self, delivery: Delivery) -> bool:
        if self.dropped_reason is not None:
            return False
        try:
            self.queue.put_nowait(delivery)
            return True
        except asyncio.QueueFull:
            what = "frames" if self.key.batch else "events"
            self.dropped_reason = (
                f"slow consumer: more than {self.max_size} {what} behind; "
                "reconnect with since=<last seq> to catch up"
            )
            return False


Listener = Callable[[Event], Awaitable[None] | None]


class Hub:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        prefix: str,
        queue_max: int = 1000,
        poll_interval_s: float = 0.5,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.key = stream_key(prefix)
        self.queue_max = queue_max
        self.poll_interval_s = poll_interval_s
        self.last_seq = 0
        self.subscribers: set[Subscriber] = set()
        # Subscribers by what they get: the match and the frame are worked out once per
        # group and cycle, however many consoles share them.
        self.groups: dict[GroupKey, set[Subscriber]] = {}
        self.listeners: list[Listener] = []
        self.mode = "starting"
        self.horizon = Horizon()
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._moved: Callable[[], list[dict[str, Any]]] | None = None
        self._positions_every_s = 2.0
        # Work done for subscribers, for /metrics and the tests that prove it does not
        # grow with the number of sockets: events encoded (at most once each per worker),
        # batch frames built (one per batch group and cycle), cycles delivered.
        self.encodes = 0
        self.batch_frames = 0
        self.cycles = 0

    def subscribe(
        self,
        filter: EventFilter = NO_FILTER,
        *,
        batch: bool = False,
        accounts: bool = True,
        positions: bool = False,
    ) -> Subscriber:
        key = GroupKey(filter, batch, accounts)
        sub = Subscriber(asyncio.Queue(self.queue_max), self.queue_max, key, positions=positions)
        self.subscribers.add(sub)
        self.groups.setdefault(key, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        group = self.groups.get(sub.key)
        if group is not None:
            group.discard(sub)
            if not group:
                del self.groups[sub.key]

    def add_listener(self, listener: Listener) -> None:
        """In-process consumers (the unit picture, the engine's wake-up)."""
        self.listeners.append(listener)

    def push_positions(self, moved: Callable[[], list[dict[str, Any]]], every_s: float) -> None:
        """Every ``every_s``, what ``moved()`` returns (units that moved since its last
        call) goes to every console subscribed with positions: computed and encoded once
        per worker, not per console (a per-console diff over a 10,000-unit fleet was most
        of a worker's time with 1,000 consoles open)."""
        self._moved, self._positions_every_s = moved, every_s

    async def start(self) -> None:
        async with self.pool.acquire() as conn:
            self.last_seq = await self.horizon.wait(conn)
        self._task = asyncio.create_task(self._run(), name="event-hub")
        if self._moved is not None:
            self._ticker = asyncio.create_task(self._push_positions(), name="positions")

    async def _push_positions(self) -> None:
        assert self._moved is not None
        while True:
            await asyncio.sleep(self._positions_every_s)
            watching = [s for s in self.subscribers if s.positions and s.dropped_reason is None]
            if not watching:
                # No diff of the fleet for nobody: the first console to come reads what
                # moved meanwhile in its first push (it loads its snapshot after it
                # connects, so that push repeats positions it has, which is harmless).
                continue
            try:
                moved = self._moved()
            except Exception:
                log.exception("hub.positions_failed")
                continue
            if not moved:
                continue
            frame = Positions(orjson.dumps({"type": "positions", "units": moved}))
            for sub in watching:
                # A console this far behind is about to be dropped for its events.
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.put_nowait(frame)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._task is not None:
            # redis-py (8.1) can swallow a cancel that lands inside a blocking read: cancel
            # again until the task has really ended.
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait([self._task], timeout=0.5)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sub in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)

    async def _deliver(self, event: Event) -> None:
        await self._deliver_cycle([event])

    async def _deliver_cycle(self, events: list[Event]) -> None:
        """One delivery cycle (an XREAD reply, a fill from PostgreSQL): events in seq
        order, each handed out once; a batch subscriber gets them in one frame."""
        fresh = [e for e in events if e.seq > self.last_seq]
        if not fresh:
            return
        self.last_seq = fresh[-1].seq
        if self.groups:
            self.cycles += 1
            self._offer(fresh)
        for event in fresh:
            for listener in self.listeners:
                try:
                    result = listener(event)
                    if result is not None:
                        await result
                except Exception:
                    log.exception("hub.listener_failed", seq=event.seq)

    def _offer(self, events: list[Event]) -> None:
        # Per cycle, each event's frame is built the first time a group wants it and then
        # shared by every group and subscriber that does (batch frames join its bytes).
        singles: dict[int, Delivery] = {}

        def single(event: Event) -> Delivery:
            delivery = singles.get(event.seq)
            if delivery is None:
                self.encodes += 1
                delivery = Delivery((event,), encode_event(event), event.seq)
                singles[event.seq] = delivery
            return delivery

        upto = events[-1].seq
        for key, group in list(self.groups.items()):
            matched = [e for e in events if key.admits(e)]
            if not matched or not group:
                continue
            subs = list(group)
            if key.batch:
                self.batch_frames += 1
                frame = batch_frame([single(e).payload for e in matched])
                delivery = Delivery(tuple(matched), frame, upto, batch=True)
                for sub in subs:
                    sub.offer(delivery)
            else:
                for event in matched:
                    delivery = single(event)
                    for sub in subs:
                        sub.offer(delivery)

    async def _fill_from_db(self, before: int | None = None) -> int:
        """Deliver what PostgreSQL has after last_seq: up to ``before`` (exclusive) when
        the relay has already vouched for it, else up to the safe horizon."""
        async with self.pool.acquire() as conn:
            if before is None:
                safe = await self.horizon.advance(conn)
                if safe <= self.last_seq:
                    return 0
                before = min(safe, self.last_seq + 1000) + 1
            events = await repository.events_between(conn, self.last_seq, before)
        await self._deliver_cycle(events)
        return len(events)

    async def _run(self) -> None:
        idle_polls = 0
        while True:
            try:
                if await self._read_redis():
                    idle_polls = 0
                else:
                    # Quiet stream: make sure no relay gap is hiding events in PostgreSQL.
                    idle_polls += 1
                    if idle_polls >= 2:
                        await self._fill_from_db()
                        idle_polls = 0
                if self.mode != "redis":
                    log.info("hub.mode", mode="redis")
                self.mode = "redis"
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.mode != "polling":
                    log.warning("hub.redis_down", error=type(exc).__name__)
                self.mode = "polling"
                await self._poll_db_while_redis_down()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("hub.db_error", error=type(exc).__name__)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("hub.loop_failed")
                await asyncio.sleep(1.0)

    async def _read_redis(self) -> bool:
        reply: Any = await self.redis.xread(
            {self.key: f"{self.last_seq}-0"}, count=500, block=int(self.poll_interval_s * 1000)
        )
        if not reply:
            return False
        # The reply is one cycle, but for a jump: what comes before it goes out first,
        # then the fill from PostgreSQL as a cycle of its own, then the rest.
        cycle: list[Event] = []
        expected = self.last_seq + 1
        for _key, entries in reply:
            for entry_id, fields in entries:
                text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                seq = int(text.split("-")[0])
                if seq < expected:
                    continue
                if seq > expected:
                    await self._deliver_cycle(cycle)
                    cycle = []
                    await self._fill_from_db(before=seq)
                raw = fields.get(b"e") if b"e" in fields else fields.get("e")
                cycle.append(_event_from_json(orjson.loads(raw)))
                expected = seq + 1
        await self._deliver_cycle(cycle)
        return True

    async def _poll_db_while_redis_down(self) -> None:
        """Degraded mode: poll PostgreSQL until Redis answers again."""
        while True:
            try:
                await self._fill_from_db()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                log.warning("hub.db_error", error=type(exc).__name__)
            await asyncio.sleep(self.poll_interval_s)
            try:
                await self.redis.ping()
                return
            except (RedisError, OSError):
                continue


def _event_from_json(data: dict[str, object]) -> Event:
    from datetime import datetime

    areas, grade = data.get("areas"), data.get("grade")
    return Event(
        seq=int(data["seq"]),  # type: ignore[call-overload]
        at=datetime.fromisoformat(str(data["at"])),
        type=str(data["type"]),
        incident_id=data.get("incident_id"),  # type: ignore[arg-type]
        unit_id=data.get("unit_id"),  # type: ignore[arg-type]
        actor=str(data["actor"]),
        data=data.get("data") or {},  # type: ignore[arg-type]
        # Absent in entries a relay of an older release wrote: matched like old rows.
        areas=None if areas is None else tuple(areas),  # type: ignore[arg-type]
        grade=None if grade is None else str(grade),
    )
