"""The relay: committed events from PostgreSQL into the Redis stream, in seq order.

Run by the elected leader on its own dedicated connection (LISTEN does not survive a
trip through the pool). A NOTIFY wakes it; a one-second poll on the same connection
both catches anything a notification missed and notices a dead connection, which ends
the loop so the caller re-elects and reconnects.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from cad.events import repository
from cad.events.hub import encode_event, stream_key
from cad.events.writer import NOTIFY_CHANNEL

log = structlog.get_logger(__name__)

STREAM_MAXLEN = 20_000


async def _stream_last_seq(redis: Redis, key: str) -> int | None:
    last = await redis.xrevrange(key, count=1)
    if not last:
        return None
    entry_id = last[0][0]
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.split("-")[0])


async def run_relay(
    conn: asyncpg.Connection, redis: Redis, prefix: str, interval_s: float = 1.0
) -> None:
    key = stream_key(prefix)
    wake = asyncio.Event()

    def on_notify(*_args: object) -> None:
        wake.set()

    await conn.add_listener(NOTIFY_CHANNEL, on_notify)
    try:
        last: int | None = None
        while True:
            if last is None:
                try:
                    last = await _stream_last_seq(redis, key)
                    if last is None:
                        # Empty stream (first start, or Redis lost it): start at the head.
                        # Hubs fill any jump from PostgreSQL, so nothing is lost.
                        last = await repository.last_seq(conn)
                except (RedisError, OSError):
                    last = None
            events = await repository.events_after(conn, last or 0, 500) if last is not None else []
            if events:
                try:
                    pipe = redis.pipeline(transaction=False)
                    for event in events:
                        pipe.xadd(
                            key,
                            {"e": encode_event(event)},
                            id=f"{event.seq}-0",
                            maxlen=STREAM_MAXLEN,
                            approximate=True,
                        )
                    await pipe.execute(raise_on_error=False)
                    last = events[-1].seq
                except ResponseError:
                    # Another relay got there first (brief split brain): re-read position.
                    last = None
                except (RedisError, OSError) as exc:
                    log.warning("relay.redis_down", error=type(exc).__name__)
                    last = None
                    await asyncio.sleep(interval_s)
                if len(events) == 500:
                    continue
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), timeout=interval_s)
            except TimeoutError:
                pass
    finally:
        try:
            await conn.remove_listener(NOTIFY_CHANNEL, on_notify)
        except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
            pass
