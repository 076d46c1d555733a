"""The safe horizon: the highest seq such that every event at or below it is final.

Read the sequence's last value L, then the set of transactions holding the writers'
marker. A writer that drew a seq <= L took the marker before drawing it, so it is in that
set unless it has already ended. Once every transaction in the set has ended, everything
up to L is committed or will never exist: a reader may deliver up to L in order and
never see a smaller seq later. Writers are never blocked by this; a reader waits only
for the transactions that were writing events when it looked.
"""

from __future__ import annotations

import asyncio

import asyncpg

from cad.events.writer import EVENTS_LOCK_KEY

_LAST = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_seq_seq"
# A bigint advisory key shows in pg_locks as classid (high 32 bits), objid (low), objsubid 1.
_HOLDERS = """
    SELECT coalesce(array_agg(virtualtransaction), '{}') FROM pg_locks
    WHERE locktype = 'advisory' AND classid = 0 AND objid = $1 AND objsubid = 1 AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND pid <> pg_backend_pid()"""
_STILL_HELD = _HOLDERS.replace(
    "AND pid <> pg_backend_pid()",
    "AND pid <> pg_backend_pid() AND virtualtransaction = ANY($2::text[])",
)


class Horizon:
    """Tracks the safe horizon for one reader, without ever blocking writers."""

    def __init__(self, start: int = 0) -> None:
        self.safe = start
        self._pending: tuple[int, list[str]] | None = None

    async def advance(self, conn: asyncpg.Connection) -> int:
        """One non-blocking step: returns the safe seq known now (never decreases)."""
        if conn.is_in_transaction():
            raise RuntimeError("the horizon must be read outside a transaction")
        if self._pending is None:
            last: int = await conn.fetchval(_LAST)
            holders: list[str] = await conn.fetchval(_HOLDERS, EVENTS_LOCK_KEY)
            self._pending = (last, holders)
        last, holders = self._pending
        if holders:
            still: list[str] = await conn.fetchval(_STILL_HELD, EVENTS_LOCK_KEY, holders)
            if still:
                self._pending = (last, still)
                return self.safe
        self._pending = None
        self.safe = max(self.safe, last)
        return self.safe

    async def wait(self, conn: asyncpg.Connection, timeout_s: float = 5.0) -> int:
        """The horizon as of now: waits for the writers that were in flight to finish."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        # Finish an older sample first, then take and finish a fresh one.
        for _ in range(2 if self._pending is not None else 1):
            await self.advance(conn)
            while self._pending is not None:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError("event writers did not finish in time")
                await asyncio.sleep(0.002)
                await self.advance(conn)
        return self.safe
