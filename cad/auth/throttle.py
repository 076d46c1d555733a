"""Sign-in throttling: failures counted per account name and per client address.

Redis counts (sliding windows, shared by every worker); PostgreSQL holds the lockouts
and, when Redis is away, counts from the access log instead, so a lockout holds and
brute force stays bounded whichever store is up.

An attempt takes a slot before its password is checked and gives it back after, so a
burst of concurrent guesses cannot all pass the gate before the first failure is counted:
at most ``max_failures`` wrong passwords are ever checked for one name per lockout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from cad.auth import repository
from cad.db.pool import transaction
from cad.errors import TooManyRequests

log = structlog.get_logger(__name__)

# KEYS: name failures (zset), name in-flight (counter), address failures (zset).
# ARGV: now ms, window ms, name max, address max, in-flight ttl ms.
# Returns {0} allowed, {1, retry ms} name full, {2, retry ms} address full.
_ENTER = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  return {2, tonumber(oldest[2]) + window - now}
end
local failures = redis.call('ZCARD', KEYS[1])
local inflight = tonumber(redis.call('GET', KEYS[2]) or '0')
if failures + inflight >= tonumber(ARGV[3]) then
  return {1, failures}
end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {0, failures}
"""

# KEYS as above. ARGV: now ms, window ms, name max, failed (0/1), member.
# Returns {1, failures} when this failure reached the maximum (the caller locks the name;
# the full window keeps refusing meanwhile, and the lock's end clears it), else {0, n}.
_LEAVE = """
local inflight = tonumber(redis.call('GET', KEYS[2]) or '0')
if inflight > 0 then redis.call('DECR', KEYS[2]) end
if ARGV[4] == '0' then
  redis.call('DEL', KEYS[1])
  return {0, 0}
end
local now = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('ZADD', KEYS[3], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
local failures = redis.call('ZCARD', KEYS[1])
if failures == tonumber(ARGV[3]) then
  return {1, failures}
end
return {0, failures}
"""

# An attempt abandoned before its outcome (the database failed mid-check) gives its slot
# back without counting.
_GIVE_BACK = """
local inflight = tonumber(redis.call('GET', KEYS[1]) or '0')
if inflight > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""

IN_FLIGHT_TTL_MS = 30_000


def name_key(username: str) -> str:
    """One key per name however it is typed: " Handler" and "handler" are one account."""
    return username.strip().lower()[:200]


def address_key(address: str | None) -> str:
    """An IPv6 client is counted by its /64: one host holds a whole /64 to rotate through."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class Gate:
    """One sign-in attempt let through the throttle; ``close`` must follow."""

    name: str
    address: str
    mode: str  # "redis" or "postgres"
    pool: asyncpg.Pool
    # PostgreSQL mode: the transaction holding this name's advisory lock until the
    # attempt is recorded, so concurrent guesses at one name are checked one at a time.
    conn: asyncpg.Connection | None = None
    member: str = field(default_factory=lambda: uuid.uuid4().hex)
    left: bool = False


@dataclass(frozen=True, slots=True)
class Lockout:
    name: str
    until: datetime
    failures: int


class SigninThrottle:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        max_failures: int,
        window_s: int,
        lockout_s: int,
        address_max_failures: int,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self.address_max_failures = address_max_failures
        self._enter = redis.register_script(_ENTER)
        self._leave = redis.register_script(_LEAVE)
        # Without Redis, one worker's attempts at one name queue here before they queue
        # for the name's advisory lock (each waiter would otherwise hold a connection).
        self._local: dict[str, asyncio.Lock] = {}

    def _keys(self, name: str, address: str) -> list[str]:
        base = f"{self.prefix}:signin"
        return [f"{base}:name:{name}", f"{base}:inflight:{name}", f"{base}:addr:{address}"]

    def _refuse(self, retry_after_s: float) -> TooManyRequests:
        # The same words whether or not the name is an account.
        wait = max(1, int(retry_after_s + 0.999))
        return TooManyRequests(
            f"too many failed sign-ins; try again in {wait} s or ask an administrator",
            retry_after_s=wait,
        )

    async def enter(self, pool: asyncpg.Pool, username: str, client_address: str | None) -> Gate:
        """Let an attempt through, or raise 429 with Retry-After."""
        name, address = name_key(username), address_key(client_address)
        async with pool.acquire() as conn:
            until = await repository.lock_until(conn, name)
        if until is not None:
            raise self._refuse((until - datetime.now(UTC)).total_seconds())
        try:
            now_ms = int(time.time() * 1000)
            verdict, value = await self._enter(
                keys=self._keys(name, address),
                args=[
                    now_ms,
                    self.window_s * 1000,
                    self.max_failures,
                    self.address_max_failures,
                    IN_FLIGHT_TTL_MS,
                ],
            )
        except (RedisError, OSError) as exc:
            log.warning("signin.throttle_fallback", error=type(exc).__name__)
            return await self._enter_postgres(pool, name, address)
        if int(verdict) == 2:
            raise self._refuse(int(value) / 1000)
        if int(verdict) == 1:
            # Full with attempts still being checked: the lock follows if they fail.
            raise self._refuse(self.lockout_s if int(value) >= self.max_failures else 1)
        return Gate(name, address, "redis", pool)

    async def _enter_postgres(self, pool: asyncpg.Pool, name: str, address: str) -> Gate:
        local = self._local.setdefault(name, asyncio.Lock())
        await local.acquire()
        gate = Gate(name, address, "postgres", pool=pool)
        try:
            gate.conn = await pool.acquire()
            await gate.conn.execute("BEGIN")
            await gate.conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"signin:{name}"
            )
            until = await repository.lock_until(gate.conn, name)
            if until is not None:
                raise self._refuse((until - datetime.now(UTC)).total_seconds())
            failures, by_address = await repository.recent_failures(
                gate.conn, name, address, self.window_s
            )
            if by_address >= self.address_max_failures:
                raise self._refuse(self.window_s)
            if failures >= self.max_failures:
                raise self._refuse(self.lockout_s)
        except BaseException:
            await self.close(gate, commit=False)
            raise
        return gate

    @asynccontextmanager
    async def transaction(self, gate: Gate) -> AsyncIterator[asyncpg.Connection]:
        """Where the attempt is recorded: in PostgreSQL mode the gate's own transaction
        (committed here, releasing the name), else a new one."""
        if gate.mode == "redis":
            async with transaction(gate.pool) as conn:
                yield conn
            return
        assert gate.conn is not None
        try:
            yield gate.conn
        except BaseException:
            await self.close(gate, commit=False)
            raise
        await self.close(gate, commit=True)

    async def close(self, gate: Gate, commit: bool = False) -> None:
        """Give back what the gate holds; safe to call again."""
        if gate.mode == "redis":
            if not gate.left:
                gate.left = True
                try:
                    await self.redis.eval(_GIVE_BACK, 1, self._keys(gate.name, gate.address)[1])
                except (RedisError, OSError):
                    pass
            return
        if gate.left:
            return
        # Once only: a second call must not release a lock another attempt now holds.
        gate.left = True
        conn, gate.conn = gate.conn, None
        if conn is not None:
            try:
                await conn.execute("COMMIT" if commit else "ROLLBACK")
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                log.warning("signin.throttle_tx_lost")
            finally:
                await gate.pool.release(conn)
        lock = self._local.get(gate.name)
        if lock is not None and lock.locked():
            lock.release()
            if not lock.locked() and not lock._waiters:  # keep the map small
                self._local.pop(gate.name, None)

    async def failures_now(self, gate: Gate) -> int:
        """PostgreSQL mode: the name's failures, the one just recorded included."""
        assert gate.conn is not None
        failures, _ = await repository.recent_failures(gate.conn, gate.name, None, self.window_s)
        return failures

    async def leave(self, gate: Gate, failed: bool) -> int | None:
        """Redis mode: count the outcome; the failures so far when this one reached the
        maximum (the caller then locks the name), else None."""
        if gate.mode != "redis" or gate.left:
            return None
        gate.left = True
        try:
            locked, failures = await self._leave(
                keys=self._keys(gate.name, gate.address),
                args=[
                    int(time.time() * 1000),
                    self.window_s * 1000,
                    self.max_failures,
                    1 if failed else 0,
                    gate.member,
                ],
            )
        except (RedisError, OSError) as exc:
            # The failure is in the access log, which the fallback counts from.
            log.warning("signin.throttle_unrecorded", error=type(exc).__name__)
            return None
        return int(failures) if int(locked) else None

    async def forget(self, name: str) -> None:
        """An unlock starts the count again."""
        try:
            await self.redis.delete(self._keys(name, "-")[0])
        except (RedisError, OSError):
            pass
