"""Per-user request limits on intake, counted in Redis across workers.

Without Redis it falls back to a per-worker count: intake keeps working (invariant 6),
the limit just becomes per worker until Redis returns.

A worker's concurrent checks of one user share a round trip: while one INCRBY for a
(user, scope, minute) is in flight, the checks that arrive join the next, which adds
their number at once. Each check still gets its own place in the count, as if each had
incremented alone (in the order they joined), so the limit is as exact as before; under
load a handler's console costs Redis a round trip per batch, not per call.

A client that keeps a worker busy (a runaway script, the limiter's reason to exist) also
gets places counted ahead: each INCRBY takes, beyond its batch, about a tenth of a
second of the rate this worker has seen from that user in the last second, and the
checks that follow take those places without asking Redis. At most a hundredth of the
limit is held ahead, and places held when the minute ends are counted but never used,
so such a client can be refused up to that many checks per worker early (60 of 6,000 by
default). Nothing is counted ahead for a user under ten checks a second on a worker: the
limit stays exact for every pace a person keeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from cad.errors import TooManyRequests

_Key = tuple[int, str, int]

_INCR = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], 120) end
return count
"""


@dataclass
class _Held:
    """Places in one window's count that this worker has counted and not yet given out,
    ``next`` to ``last``; and how many checks of the key it has seen, this second and
    the one before (what sets how many to count ahead)."""

    window: int = -1
    next: int = 1
    last: int = 0
    second: int = -1
    this_second: int = 0
    last_second: int = 0

    def seen(self, now: float) -> None:
        second = int(now)
        if second != self.second:
            self.last_second = self.this_second if second == self.second + 1 else 0
            self.this_second, self.second = 0, second
        self.this_second += 1


@dataclass
class _Batch:
    """Checks that will be counted together: their number, and the count after them."""

    total: asyncio.Future[int]
    held: _Held
    size: int = 0


class RateLimiter:
    def __init__(
        self, redis: Redis, prefix: str, per_minute: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.prefix = prefix
        self.per_minute = per_minute
        self._local: dict[_Key, int] = {}
        # One command, where INCRBY and EXPIRE were two: its window's key expires once
        # created (the minute is in its name; the expiry only clears it away).
        self._incr = redis.register_script(_INCR)
        self._waiting: dict[_Key, _Batch] = {}  # not yet sent: new checks join it
        self._held: dict[tuple[int, str], _Held] = {}
        self._in_flight: dict[_Key, asyncio.Future[int]] = {}
        # The sends, held so that none is collected mid-flight; one that a check's
        # cancellation cannot stop, since the other checks of its batch wait on it.
        self._sends: set[asyncio.Task[None]] = set()

    async def check(self, user_id: int, scope: str) -> None:
        if self.per_minute <= 0:
            return
        now = self.clock()
        window = int(now // 60)
        held = self._held.get((user_id, scope))
        if held is None:
            held = self._held[(user_id, scope)] = _Held()
            if len(self._held) > 10_000:  # users gone quiet: their places are stale anyway
                self._held = {k: v for k, v in self._held.items() if v.second >= now - 60}
        held.seen(now)
        if held.window == window and held.next <= held.last:
            count = held.next
            held.next += 1
            self._refuse_over(count, scope)
            return
        key = (user_id, scope, window)
        batch = self._waiting.get(key)
        if batch is None:
            batch = _Batch(asyncio.get_running_loop().create_future(), held)
            self._waiting[key] = batch
            send = asyncio.create_task(self._send(key, batch))
            self._sends.add(send)
            send.add_done_callback(self._sends.discard)
        place = batch.size  # 0-based, among this batch's checks
        batch.size += 1
        total = await asyncio.shield(batch.total)
        self._refuse_over(total - batch.size + place + 1, scope)

    def _refuse_over(self, count: int, scope: str) -> None:
        if count > self.per_minute:
            raise TooManyRequests(
                f"more than {self.per_minute} {scope} requests a minute from this user",
                retry_after_s=60 - int(self.clock()) % 60,
            )

    async def _send(self, key: _Key, batch: _Batch) -> None:
        """One INCRBY for the batch, after the key's previous batch (so counts stay in
        the order the checks arrived); the batch takes checks until it is sent."""
        previous = self._in_flight.get(key)
        if previous is not None:
            await asyncio.wait([previous])
        del self._waiting[key]
        self._in_flight[key] = batch.total
        held = batch.held
        ahead = 0
        if held.window != key[2] or held.next > held.last:  # none left from the last
            ahead = min(held.last_second // 10, self.per_minute // 100)
        try:
            total = await self._count(key, batch.size + ahead)
            if ahead:
                held.window, held.next, held.last = key[2], total - ahead + 1, total
            batch.total.set_result(total - ahead)
        except Exception as exc:  # every check of the batch answers it
            batch.total.set_exception(exc)
        finally:
            if self._in_flight.get(key) is batch.total:
                del self._in_flight[key]

    async def _count(self, key: _Key, n: int) -> int:
        user_id, scope, window = key
        name = f"{self.prefix}:rl:{scope}:{user_id}:{window}"
        try:
            return int(await self._incr(keys=[name], args=[n]))
        except (RedisError, OSError):
            self._local = {k: v for k, v in self._local.items() if k[2] >= window - 1}
            count = self._local.get(key, 0) + n
            self._local[key] = count
            return count
