"""Group commit (cad/db/group_commit.py) against the real PostgreSQL: concurrent writes
share statements, each is answered with its own outcome, and one that PostgreSQL
refuses fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, timedelta

import asyncpg
import pytest

from cad.db.group_commit import GroupCommit
from cad.db.pool import create_pool
from cad.errors import Unavailable
from tests.conftest import Api, call_body
from tests.intake._support import offset, post_call
from tests.retrieval._support import LAMBETH, call, ok


async def test_concurrent_writes_share_statements_and_a_refused_one_fails_alone(
    db_url: str,
) -> None:
    pool = await create_pool(db_url, 1, 4, 10)
    try:
        await pool.execute(
            "CREATE TABLE gc_items (id bigint PRIMARY KEY CHECK (id > 0), key text UNIQUE)"
        )
        statements: list[int] = []

        async def write(conn: asyncpg.Connection, items: Sequence[tuple[int, str]]) -> list[bool]:
            statements.append(len(items))
            rows = await conn.fetch(
                """INSERT INTO gc_items (id, key) SELECT * FROM unnest($1::bigint[], $2::text[])
                   ON CONFLICT (key) DO NOTHING RETURNING id""",
                [i for i, _ in items],
                [k for _, k in items],
            )
            written = {r["id"] for r in rows}
            return [i in written for i, _ in items]

        group = GroupCommit(pool, write, key=lambda it: it[1])
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

        async def write(conn: asyncpg.Connection, items: Sequence[int]) -> list[bool]:
            if len(items) > 1:
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            return [True for _ in items]

        group = GroupCommit(pool, write)
        assert await group.submit(1) is True  # alone: written
        got = await asyncio.gather(*(group.submit(n) for n in range(2, 6)), return_exceptions=True)
        # Not retried one by one (which could write twice what had committed): each is
        # told the database was unavailable (a 503 at the edge).
        assert all(isinstance(g, Unavailable) for g in got), got
    finally:
        await pool.close()


async def test_a_flush_waits_for_the_calls_under_way_and_a_lone_call_does_not(
    db_url: str,
) -> None:
    pool = await create_pool(db_url, 1, 4, 10)
    try:
        statements: list[list[int]] = []

        async def run(conn: asyncpg.Connection, items: Sequence[int]) -> list[int]:
            statements.append(list(items))
            return list(await conn.fetchval("SELECT $1::int[]", list(items)))

        under_way = 3
        group = GroupCommit(pool, run, linger_s=30.0, min_batch=3, active=lambda: under_way)
        first = asyncio.ensure_future(group.submit(1))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(group.submit(2))
        await asyncio.sleep(0.05)
        assert statements == []  # three are under way: the first two wait for the third
        third = asyncio.ensure_future(group.submit(3))
        assert await asyncio.gather(first, second, third) == [1, 2, 3]
        assert statements == [[1, 2, 3]]

        # Fewer under way than a full batch: written at once (a wait would take 30 s).
        under_way = 2
        assert await asyncio.wait_for(group.submit(4), 10) == 4
        assert statements[-1] == [4]
        # Without a wait (the default), calls that come apart go apart.
        plain = GroupCommit(pool, run, active=lambda: 3)
        assert await plain.submit(5) == 5 and await plain.submit(6) == 6
        assert statements[-2:] == [[5], [6]]

        # The wait is bounded: the company expected may never come.
        under_way = 3
        short = GroupCommit(pool, run, linger_s=0.05, min_batch=3, active=lambda: under_way)
        assert await asyncio.wait_for(short.submit(7), 10) == 7
        assert statements[-1] == [7]
    finally:
        await pool.close()


async def test_calls_under_way_are_counted_until_answered_refused_ones_too(api: Api) -> None:
    intake = api.state.intake
    await ok(await post_call(api, call_body("THEFT", *LAMBETH)), 201)
    assert intake.calls == 0
    counted: list[int] = []
    reads_submit = intake.reads.submit

    async def submit(item: object) -> object:
        counted.append(intake.calls)
        return await reads_submit(item)  # type: ignore[arg-type]

    intake.reads.submit = submit  # type: ignore[method-assign]
    got = await asyncio.gather(*(post_call(api, call_body("THEFT", *LAMBETH)) for _ in range(5)))
    assert [r.status_code for r in got] == [201] * 5
    assert counted and max(counted) >= 2 and intake.calls == 0, counted
    # Refused inside (a type the catalogue does not know): still counted out.
    refused = await post_call(api, call_body("NO_SUCH_TYPE", *LAMBETH))
    assert refused.status_code == 422, refused.text
    assert intake.calls == 0


@pytest.mark.gazetteer
async def test_calls_that_share_statements_each_get_their_own_answer(api: Api) -> None:
    """Concurrent calls at different places, read and written in shared statements: each
    answer holds its own place, markers and duplicates, as the same call alone would."""
    spots = [offset(*LAMBETH, north_m=700 * n, east_m=300 * (n % 3)) for n in range(8)]
    marker = await ok(
        await api.as_(
            "supervisor",
            "POST",
            "/api/markers",
            json={
                "category": "firearms", "text": "Licensed shotgun holder", "lat": spots[2][0],
                "lng": spots[2][1], "radius_m": 50,
                "review_at": (date.today() + timedelta(days=90)).isoformat(),
            },
        ),
        201,
    )  # fmt: skip
    earlier = (await call(api, "THEFT", at=spots[5]))["incident"]
    await api.headers("handler")
    reads, writes = api.state.intake.reads, api.state.intake.writes
    before = (reads.statements, writes.statements)
    bodies = [call_body("THEFT", *spots[n % 8], description=f"call {n}") for n in range(32)]
    answers = [await ok(r, 201) for r in await asyncio.gather(*(post_call(api, b) for b in bodies))]
    assert reads.statements - before[0] < 16 and writes.statements - before[1] < 16

    for n, answer in enumerate(answers):
        lat, lng = spots[n % 8]
        incident = answer["incident"]
        assert (incident["lat"], incident["lng"], incident["description"]) == (
            lat, lng, f"call {n}",
        )  # fmt: skip
        near = await ok(
            await api.as_("handler", "GET", "/api/places/reverse", params={"lat": lat, "lng": lng})
        )
        assert incident["address_line"] == near["line"], n
        assert [m["id"] for m in answer["markers"]] == ([marker["id"]] if n % 8 == 2 else []), n
        if n % 8 == 5:
            assert earlier["id"] in [d["id"] for d in answer["possible_duplicates"]], n
        else:
            assert earlier["id"] not in [d["id"] for d in answer["possible_duplicates"]], n


async def test_the_shared_statements_run_on_generic_plans_and_the_rest_do_not(api: Api) -> None:
    """A batch fills the shared statements' arrays to any length: re-planning the read
        for each one cost more than running it (pg_stat_statements; README, "What bounds
    the misses"). The main
        pool keeps PostgreSQL's choice, which lets ``status = $1`` use a partial index."""
    intake = api.state.intake
    assert intake.reads.pool is intake.writes.pool is not api.state.pool
    async with intake.reads.pool.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
    async with api.state.pool.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
    r = await post_call(api, call_body())
    assert r.status_code == 201, r.text
    assert intake.reads.statements == intake.writes.statements == 1
