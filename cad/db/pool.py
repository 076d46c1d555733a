"""The asyncpg pool and the transaction each request runs in.

Services receive a connection that is already inside a transaction and never commit;
the context manager here owns commit and rollback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson

from cad.errors import Unavailable


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pool connection released without the reset query (RESET ALL, UNLISTEN *,
    pg_advisory_unlock_all(), CLOSE ALL): one round trip on every request that finds
    nothing to reset, since pooled connections never LISTEN, never SET a session
    variable and take transaction-scoped locks only. asyncpg still rolls back an open
    transaction on release."""

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    dsn: str,
    min_size: int,
    max_size: int,
    command_timeout_s: float,
    *,
    generic_plans: bool = False,
    application_name: str = "cad",
) -> asyncpg.Pool:
    """``generic_plans``: every prepared statement keeps the one plan made for any
    parameters (for the shared intake statements, whose arrays any batch may fill: a
    custom plan re-plans the whole statement for each batch, which cost more than running
    it). Not for the main pool: a generic plan cannot use a partial index whose predicate
    a parameter would have to satisfy (``status = $1``)."""
    settings = {"synchronous_commit": "on", "application_name": application_name}
    if generic_plans:
        settings["plan_cache_mode"] = "force_generic_plan"
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout_s,
        init=_init_connection,
        connection_class=PooledConnection,
        # Acknowledged means durable: never let a session turn this off.
        server_settings=settings,
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """A dedicated connection (the leader's session lock): never one from the pool, whose
    connections are reset on release (advisory unlock)."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "cad-dedicated"})
    await _init_connection(conn)
    return conn


# Errors that mean "the database is not there right now", turned into 503.
DB_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
)
DB_DOWN_OR_SLOW: tuple[type[BaseException], ...] = (*DB_DOWN_ERRORS, TimeoutError)


@asynccontextmanager
async def connection(
    pool: asyncpg.Pool, acquire_timeout_s: float = 10.0
) -> AsyncIterator[asyncpg.Connection]:
    """A pool connection outside any transaction: for a command that is one statement,
    which PostgreSQL commits (or not) as a whole, as it would a transaction."""
    try:
        conn_cm = pool.acquire(timeout=acquire_timeout_s)
        conn = await conn_cm.__aenter__()
    except DB_DOWN_OR_SLOW as exc:
        raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
    try:
        yield conn
    except DB_DOWN_ERRORS as exc:
        raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
    finally:
        await conn_cm.__aexit__(None, None, None)


@asynccontextmanager
async def transaction(
    pool: asyncpg.Pool, acquire_timeout_s: float = 10.0
) -> AsyncIterator[asyncpg.Connection]:
    async with connection(pool, acquire_timeout_s) as conn, conn.transaction():
        yield conn
