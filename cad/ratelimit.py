"""Per-user request limits on intake, counted in Redis across workers.

Without Redis it falls back to a per-worker count: intake keeps working (invariant 6),
the limit just becomes per worker until Redis returns.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from cad.errors import TooManyRequests


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str, per_minute: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.per_minute = per_minute
        self._local: dict[tuple[int, str, int], int] = {}

    async def check(self, user_id: int, scope: str) -> None:
        if self.per_minute <= 0:
            return
        window = int(time.time() // 60)
        key = f"{self.prefix}:rl:{scope}:{user_id}:{window}"
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
        except (RedisError, OSError):
            local_key = (user_id, scope, window)
            self._local = {k: v for k, v in self._local.items() if k[2] >= window - 1}
            count = self._local.get(local_key, 0) + 1
            self._local[local_key] = count
        if int(count) > self.per_minute:
            raise TooManyRequests(
                f"more than {self.per_minute} {scope} requests a minute from this user",
                retry_after_s=60 - int(time.time()) % 60,
            )
