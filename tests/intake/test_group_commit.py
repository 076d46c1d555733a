"""Group commit (cad/db/group_commit.py) against the real PostgreSQL: concurrent writes
share statements, each is answered with its own outcome, and one that PostgreSQL
refuses fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

from cad.db.group_commit import GroupCommit
from cad.db.pool import create_pool
from cad.errors import Unavailable


async def test_concurrent_writes_share_statements_and_a_refused_one_fails_alone(
    db_url: str,
) -> None:
    pool = await create_pool(db_url, 1, 4, 10)
    try:
        await pool.execute(
            "CREATE TABLE gc_items (id bigint PRIMARY KEY CHECK (id > 0), key text UNIQUE)"
        )
        statements: list[int] = []

        async def write(conn: asyncpg.Connection, items: Sequence[tuple[int, str]]) -> set[int]:
            statements.append(len(items))
            rows = await conn.fetch(
                """INSERT INTO gc_items (id, key) SELECT * FROM unnest($1::bigint[], $2::text[])
                   ON CONFLICT (key) DO NOTHING RETURNING id""",
                [i for i, _ in items],
                [k for _, k in items],
            )
            return {r["id"] for r in rows}

        group = GroupCommit(pool, write, ident=lambda it: it[0], key=lambda it: it[1])
        items = [(n, f"k{n}") for n in range(1, 41)]
        items[17] = (-18, "k18")  # the CHECK refuses it: its statement wrote nothing
        items[30] = (31, "k5")  # a key repeated: not in k5's statement, and finds it taken
        got = await asyncio.gather(*(group.submit(it) for it in items), return_exceptions=True)

        assert isinstance(got[17], asyncpg.CheckViolationError)
        assert got[30] is False
        assert all(g is True for n, g in enumerate(got) if n not in (17, 30)), got
        assert sorted(await pool.fetchval("SELECT array_agg(id) FROM gc_items")) == [
            n for n in range(1, 41) if n not in (18, 31)
        ]
        # One statement for the 39 distinct keys, refused; then each of them alone; then
        # the repeated key's, which had waited for the next statement.
        assert statements == [39] + [1] * 39 + [1], statements
        statements.clear()
        more = await asyncio.gather(*(group.submit((n, f"m{n}")) for n in range(200, 240)))
        assert more == [True] * 40 and statements == [40]
        # Writes that come one at a time go one at a time.
        assert await group.submit((100, "k100")) is True
        assert statements[-1] == 1
    finally:
        await pool.close()


async def test_a_lost_connection_fails_every_write_of_its_statement(db_url: str) -> None:
    """The statement may or may not have committed: no item of it is told it was written."""
    pool = await create_pool(db_url, 1, 4, 10)
    try:

        async def write(conn: asyncpg.Connection, items: Sequence[int]) -> set[int]:
            if len(items) > 1:
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            return set(items)

        group = GroupCommit(pool, write, ident=lambda it: it, key=lambda it: None)
        assert await group.submit(1) is True  # alone: written
        got = await asyncio.gather(*(group.submit(n) for n in range(2, 6)), return_exceptions=True)
        # Not retried one by one (which could write twice what had committed): each is
        # told the database was unavailable (a 503 at the edge).
        assert all(isinstance(g, Unavailable) for g in got), got
    finally:
        await pool.close()
