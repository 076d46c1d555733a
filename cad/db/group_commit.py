"""Group commit: a worker's concurrent statements of one kind, sent as one.

Each request prepares what it will write (or ask), hands it over and waits: whatever
arrives while a statement is in flight goes out together in the next, one round trip
and one commit for all of them. A request is answered only after the statement that
holds its rows has committed, so acknowledged still means durable. A statement that PostgreSQL
refuses wrote nothing: its items are then written one by one, so one bad call fails
alone. A lost connection is different, since the statement may or may not have
committed: every item of it gets the error (a 503), and a retry with the same
Idempotency-Key replays the answer if it had.

A statement costs PostgreSQL and the worker about as much again as each item in it, so
under load a flush may wait a moment for more (``linger_s``, as PostgreSQL's own
commit_delay waits for other commits): up to that long, until ``min_batch`` items are
queued, and only while at least that many requests are under way (``active``), so a
lone call never waits for company that is not coming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

import asyncpg
import structlog

from cad.db.pool import connection

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        pool: asyncpg.Pool,
        run: Callable[[asyncpg.Connection, Sequence[T]], Awaitable[Sequence[R]]],
        key: Callable[[T], Hashable | None] = lambda _: None,
        *,
        max_batch: int = 64,
        acquire_timeout_s: float = 10.0,
        linger_s: float = 0.0,
        min_batch: int = 1,
        active: Callable[[], int] = lambda: 0,
    ) -> None:
        """``run`` runs items in one statement and returns each one's result, in order;
        ``key`` names what must not meet itself in one statement (an Idempotency-Key),
        or None; ``active``, how many requests are under way that may yet submit (more
        is harmless: the wait is bounded by ``linger_s``)."""
        self.pool = pool
        self.run = run
        self.key = key
        self.max_batch = max_batch
        self.acquire_timeout_s = acquire_timeout_s
        # What it has sent: statements, and the items in them (items ÷ statements is the
        # sharing a worker gets under its load).
        self.statements = 0
        self.items = 0
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.linger_s = linger_s
        self.min_batch = min_batch
        self.active = active
        self._enough: asyncio.Future[None] | None = None  # set once min_batch are queued

    async def submit(self, item: T) -> R:
        """The item's result, once the statement that held it has committed."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, done))
        enough = self._enough
        if enough is not None and len(self._queue) >= self.min_batch and not enough.done():
            enough.set_result(None)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="group-commit")
        # A request that goes away does not take its neighbours' statement with it.
        return await asyncio.shield(done)

    async def _flush(self) -> None:
        try:
            while self._queue:
                if self._worth_waiting():
                    await self._linger()
                batch = self._take()
                try:
                    await self._write(batch)
                except asyncpg.PostgresError as exc:
                    log.warning("group_commit.refused", items=len(batch), error=type(exc).__name__)
                    for one in batch:
                        try:
                            await self._write([one])
                        except Exception as alone:  # this item's own answer
                            _fail([one], alone)
                except Exception as exc:
                    _fail(batch, exc)
        finally:
            self._flusher = None

    def _worth_waiting(self) -> bool:
        return (
            self.linger_s > 0
            and len(self._queue) < self.min_batch
            and self.active() >= self.min_batch
        )

    async def _linger(self) -> None:
        loop = asyncio.get_running_loop()
        self._enough = enough = loop.create_future()
        timer = loop.call_later(self.linger_s, _settle, enough)
        try:
            await enough
        finally:
            timer.cancel()
            self._enough = None

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        """Up to max_batch items in arrival order, each key once (a repeat waits for the
        next statement, where it finds its key taken and replays)."""
        batch: list[tuple[T, asyncio.Future[R]]] = []
        rest: list[tuple[T, asyncio.Future[R]]] = []
        keys: set[Hashable] = set()
        for entry in self._queue:
            k = self.key(entry[0])
            if len(batch) >= self.max_batch or (k is not None and k in keys):
                rest.append(entry)
                continue
            if k is not None:
                keys.add(k)
            batch.append(entry)
        self._queue = rest
        return batch

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.statements += 1
        self.items += len(batch)
        async with connection(self.pool, self.acquire_timeout_s) as conn:
            results = await self.run(conn, [item for item, _ in batch])
        for (_, done), result in zip(batch, results, strict=True):
            if not done.done():
                done.set_result(result)


def _fail(batch: Sequence[tuple[object, asyncio.Future[Any]]], exc: BaseException) -> None:
    for _, done in batch:
        if not done.done():
            done.set_exception(exc)


def _settle(enough: asyncio.Future[None]) -> None:
    if not enough.done():
        enough.set_result(None)
