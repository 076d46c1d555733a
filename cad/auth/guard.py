"""Per-worker knowledge of ended sessions, so a token of one is refused at once.

Access tokens are verified without a database read; what makes ending a session take
effect everywhere is the event log: ending one appends ``auth.sessions_ended`` in the
same transaction, every worker's hub delivers it (Redis stream, or PostgreSQL polling
when Redis is down) within about a second, and this guard then refuses the session's
tokens and closes its open WebSockets. A worker that starts loads the sessions ended
within an access token's life from PostgreSQL. An entry is kept only as long as a token
of that session could still be unexpired; refreshing one is refused by PostgreSQL itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import asyncpg
import structlog

from cad.auth import repository
from cad.auth.security import Principal
from cad.errors import Unauthorized
from cad.events.writer import Event

log = structlog.get_logger(__name__)

SESSIONS_ENDED = "auth.sessions_ended"
# A little past a token's life: clocks of workers and of PostgreSQL differ slightly.
_MARGIN_S = 60

Closer = Callable[[str], None]


class SessionGuard:
    def __init__(self, access_ttl_s: int) -> None:
        self.keep_s = access_ttl_s + _MARGIN_S
        self.ended: dict[str, tuple[float, str]] = {}
        self.streams: dict[str, set[Closer]] = {}
        self._next_prune = 0.0

    def check(self, principal: Principal) -> None:
        entry = self.ended.get(principal.session_id)
        if entry is not None:
            raise Unauthorized(f"session ended: {entry[1]}; sign in again", reason="session_ended")

    def end(self, session_ids: Iterable[str], reason: str) -> None:
        now = time.monotonic()
        for sid in session_ids:
            self.ended[sid] = (now + self.keep_s, reason)
            for close in list(self.streams.get(sid, ())):
                close(reason)
        if now >= self._next_prune:
            self._next_prune = now + 60
            self.ended = {k: v for k, v in self.ended.items() if v[0] > now}

    def on_event(self, event: Event) -> None:
        if event.type == SESSIONS_ENDED:
            self.end(event.data.get("session_ids", ()), str(event.data.get("reason", "ended")))

    async def load(self, conn: asyncpg.Connection) -> None:
        rows = await repository.recently_ended(conn, self.keep_s)
        for row in rows:
            self.end([row["id"]], row["ended_reason"] or "ended")
        log.info("guard.loaded", ended=len(rows))

    def watch(self, session_id: str, close: Closer) -> Callable[[], None]:
        """Call ``close(reason)`` when the session ends; returns the way to stop watching."""
        self.streams.setdefault(session_id, set()).add(close)

        def unwatch() -> None:
            closers = self.streams.get(session_id)
            if closers is not None:
                closers.discard(close)
                if not closers:
                    del self.streams[session_id]

        return unwatch
