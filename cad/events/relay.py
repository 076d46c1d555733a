"""The relay: final events from PostgreSQL into the Redis stream, in seq order.

Run by the elected leader on its own dedicated connection. It polls the safe horizon
(see horizon.py) every few milliseconds, which also notices a dead connection and ends
the loop so the caller re-elects and reconnects. Nothing is written to PostgreSQL to wake
it: a NOTIFY in every command would serialise all commits on PostgreSQL's notify queue.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from cad.events import repository
from cad.events.horizon import Horizon
from cad.events.hub import encode_event, stream_key

log = structlog.get_logger(__name__)

STREAM_MAXLEN = 20_000
BATCH = 500

# A batch's events in seq order, in one command (as a pipeline of XADDs, redis-py packed
# and parsed each in Python, one batch after another under a stream of calls). An id at or below
# the stream's last stops it there with an error, as that XADD did: the relay re-reads
# its position, and what is after it is relayed from there.
_APPEND = """
for i = 2, #ARGV, 2 do
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], ARGV[i], 'e', ARGV[i + 1])
end
return (#ARGV - 1) / 2
"""


async def _stream_last_seq(redis: Redis, key: str) -> int | None:
    last = await redis.xrevrange(key, count=1)
    if not last:
        return None
    entry_id = last[0][0]
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.split("-")[0])


async def run_relay(
    conn: asyncpg.Connection, redis: Redis, prefix: str, interval_s: float = 0.005
) -> None:
    key = stream_key(prefix)
    append = redis.register_script(_APPEND)
    horizon = Horizon()
    await horizon.wait(conn)
    last: int | None = None
    idle_s = interval_s
    while True:
        if last is None:
            try:
                last = await _stream_last_seq(redis, key)
                if last is None or last > horizon.safe:
                    # Empty stream (first start, or Redis lost it), or one from before a
                    # restore: start at the horizon. Hubs fill any jump from PostgreSQL.
                    last = horizon.safe
            except (RedisError, OSError):
                last = None
        safe = await horizon.advance(conn)
        if last is not None and safe > last:
            events = await repository.events_between(conn, last, min(safe, last + BATCH) + 1)
            try:
                entries: list[str | bytes] = []
                for event in events:
                    entries += (f"{event.seq}-0", encode_event(event))
                await append(keys=[key], args=[STREAM_MAXLEN, *entries])
                behind = safe > last + BATCH
                last = min(safe, last + BATCH)
                idle_s = interval_s
                if behind:
                    continue
                # Caught up: wait a beat before looking again. Straight back, under a
                # stream of calls the loop went round ~500 times a second, each time
                # two or three horizon queries for one or two events; now each pass
                # carries what a few milliseconds bring.
                await asyncio.sleep(interval_s)
                continue
            except ResponseError:
                # Another relay got there first (brief split brain): re-read the position.
                last = None
            except (RedisError, OSError) as exc:
                log.warning("relay.redis_down", error=type(exc).__name__)
                last = None
                await asyncio.sleep(1.0)
        # Busy: look again soon. Quiet: back off, to at most 20 ms of added latency (a
        # horizon query 50 times a second costs the database ~1% of a core).
        await asyncio.sleep(idle_s)
        idle_s = min(idle_s * 2, 0.02)
