"""Consoles miss nothing: every committed event exactly once, in seq order, across
reconnects, concurrent writers, worker processes and a missing Redis."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import websockets
from redis.asyncio import Redis

from cad.config import Settings
from cad.db.pool import connect
from cad.events import repository
from cad.events.horizon import Horizon
from cad.events.hub import Hub, encode_event, stream_key
from cad.events.relay import run_relay
from cad.events.writer import append_event
from tests.conftest import Api, Server, call_body, login, start_server, wait_for


class Console:
    """A WebSocket console that records what it receives."""

    def __init__(self, url: str, token: str, since: int | None = 0) -> None:
        self.url = url.replace("http", "ws") + f"/ws/events?token={token}"
        if since is not None:
            self.url += f"&since={since}"
        self.seqs: list[int] = []
        self.hello: dict[str, Any] | None = None
        self.close_reason: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Console:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async with websockets.connect(self.url, max_size=2**22) as ws:
            async for message in ws:
                data = orjson.loads(message)
                if data.get("type") == "hello" and "seq" not in data:
                    self.hello = data
                    continue
                self.seqs.append(data["seq"])
            self.close_reason = ws.close_reason

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await self._task

    async def wait_until(self, seq: int, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.seqs or self.seqs[-1] < seq:
            if self._task is not None and self._task.done():
                self._task.result()
                raise AssertionError(f"socket closed: {self.close_reason}")
            assert asyncio.get_running_loop().time() < deadline, (
                f"got up to {self.seqs[-1] if self.seqs else None}, wanted {seq}"
            )
            await asyncio.sleep(0.05)


async def db_seqs(settings: Settings) -> list[int]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return [r["seq"] for r in await conn.fetch("SELECT seq FROM events ORDER BY seq")]
    finally:
        await conn.close()


async def make_calls(url: str, token: str, n: int, writers: int = 4) -> None:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:

        async def writer(w: int) -> None:
            for i in range(n // writers):
                r = await client.post(
                    "/api/calls",
                    json=call_body(
                        "VIOLENCE", 51.45 + w * 0.02, -0.2 + i * 0.003, risk={"ongoing": True}
                    ),
                )
                assert r.status_code == 201, r.text

        await asyncio.gather(*(writer(w) for w in range(writers)))


@pytest.mark.parametrize("first_outcome", ["commit", "rollback"])
async def test_horizon_never_passes_an_event_still_in_flight(
    db_url: str, first_outcome: str
) -> None:
    """seq 1 is drawn first but commits last: no reader may get past it until it ends."""
    first, second, reader = [await connect(db_url) for _ in range(3)]
    try:
        horizon = Horizon()
        start = await horizon.wait(reader)
        tx1 = first.transaction()
        await tx1.start()
        e1 = await append_event(first, "first", "t")
        async with second.transaction():  # writers never wait for each other
            e2 = await append_event(second, "second", "t")
        assert e2.seq > e1.seq
        for _ in range(5):
            assert await horizon.advance(reader) < e1.seq
        with pytest.raises(TimeoutError):
            await horizon.wait(reader, timeout_s=0.2)
        await (tx1.commit() if first_outcome == "commit" else tx1.rollback())
        safe = await horizon.wait(reader)
        assert safe >= e2.seq > start
        seen = [e.seq for e in await repository.events_between(reader, start, safe + 1)]
        expected = [e1.seq, e2.seq] if first_outcome == "commit" else [e2.seq]
        assert seen == expected
    finally:
        for conn in (first, second, reader):
            await conn.close()


async def test_catch_up_then_live_exactly_once_under_concurrent_writers(server: Server) -> None:
    handler = await login(server.url, "handler")
    viewer = await login(server.url, "dispatcher")
    await make_calls(server.url, handler, 12)
    settings = Settings(database_url=server.env["CAD_DATABASE_URL"])
    async with (
        Console(server.url, viewer, since=0) as from_start,
        Console(server.url, viewer, since=5) as from_five,
        Console(server.url, viewer, since=None) as live_only,
    ):
        await asyncio.sleep(0.3)  # let the live-only console say hello before writes
        await make_calls(server.url, handler, 40, writers=8)
        expected = await db_seqs(settings)
        for console in (from_start, from_five, live_only):
            await console.wait_until(expected[-1])
    # The engine keeps committing (auto-dispatch), so compare up to the snapshot.
    upto = expected[-1]
    assert [s for s in from_start.seqs if s <= upto] == expected
    assert [s for s in from_five.seqs if s <= upto] == [s for s in expected if s > 5]
    assert live_only.hello is not None
    assert [s for s in live_only.seqs if s <= upto] == [
        s for s in expected if s > live_only.hello["last_seq"]
    ]
    assert len(live_only.seqs) >= 40  # at least every incident.created written while live


async def test_reconnect_resumes_with_nothing_missed_or_doubled(server: Server) -> None:
    handler = await login(server.url, "handler")
    viewer = await login(server.url, "dispatcher")
    settings = Settings(database_url=server.env["CAD_DATABASE_URL"])
    received: list[int] = []
    writes = asyncio.create_task(make_calls(server.url, handler, 60, writers=3))
    last = 0
    connections = 0
    deadline = asyncio.get_running_loop().time() + 90
    # Connect, read a few events, drop the connection, resume from the last seq: again
    # and again while writers keep committing, then until caught up.
    while True:
        assert asyncio.get_running_loop().time() < deadline, (
            f"not caught up: {connections} connections, last {last}, "
            f"db {(await db_seqs(settings))[-1:]}, writes done {writes.done()}"
        )
        url = server.url.replace("http", "ws") + f"/ws/events?token={viewer}&since={last}"
        connections += 1
        # max_queue=None: a client that stops reading mid-backlog must still read the
        # server's close frame, or its close waits out the timeout (client-side flow
        # control, not the server).
        async with websockets.connect(url, open_timeout=5, close_timeout=2, max_queue=None) as ws:
            with contextlib.suppress(TimeoutError):
                for _ in range(7):
                    data = orjson.loads(await asyncio.wait_for(ws.recv(), 0.3))
                    if "seq" in data:
                        received.append(data["seq"])
                        last = data["seq"]
        if writes.done():
            expected = await db_seqs(settings)
            if last >= expected[-1]:
                break
    await writes
    assert connections > 5
    assert [s for s in received if s <= expected[-1]] == expected


async def test_two_processes_share_one_stream(settings: Settings) -> None:
    a = start_server(settings, name="stream-a")
    b = start_server(settings, name="stream-b")
    try:
        handler = await login(a.url, "handler")
        viewer = await login(b.url, "dispatcher")
        async with Console(b.url, viewer, since=0) as on_b, Console(a.url, viewer, since=0) as on_a:
            await make_calls(a.url, handler, 20)
            expected = await db_seqs(settings)
            await on_b.wait_until(expected[-1])
            await on_a.wait_until(expected[-1])
        upto = expected[-1]
        assert [s for s in on_b.seqs if s <= upto] == expected
        assert [s for s in on_a.seqs if s <= upto] == expected
    finally:
        a.stop()
        b.stop()


async def test_without_redis_consoles_still_update(settings: Settings) -> None:
    srv = start_server(settings, name="noredis", CAD_REDIS_URL="redis://127.0.0.1:1/0")
    try:
        handler = await login(srv.url, "handler")
        viewer = await login(srv.url, "dispatcher")
        async with Console(srv.url, viewer, since=0) as console:
            await make_calls(srv.url, handler, 8)  # intake works without Redis
            expected = await db_seqs(settings)
            await console.wait_until(expected[-1])
        assert [s for s in console.seqs if s <= expected[-1]] == expected
        async with httpx.AsyncClient(base_url=srv.url) as client:
            ready = (await client.get("/readyz")).json()
        assert ready["checks"]["redis"].startswith("down")
        assert ready["hub"] == "polling"
    finally:
        srv.stop()


async def test_slow_subscriber_is_dropped_with_a_reason(db_url: str, redis_prefix: str) -> None:
    from redis.asyncio import Redis

    from cad.db.pool import create_pool
    from tests.conftest import REDIS_URL

    pool = await create_pool(db_url, 1, 2, 10)
    redis = Redis.from_url(REDIS_URL)
    hub = Hub(pool, redis, redis_prefix, queue_max=3)
    try:
        slow = hub.subscribe()
        fast = hub.subscribe()
        conn = await connect(db_url)
        for i in range(5):
            async with conn.transaction():
                event = await append_event(conn, "t", "tester", data={"i": i})
            await hub._deliver(event)
            with contextlib.suppress(asyncio.QueueEmpty):
                fast.queue.get_nowait()
        await conn.close()
        assert slow.dropped_reason is not None and "slow consumer" in slow.dropped_reason
        # It keeps what it had (the sender drains those, then closes with the reason).
        assert slow.queue.qsize() == 3
        assert fast.dropped_reason is None
    finally:
        await redis.aclose()
        await pool.close()


async def test_events_catch_up_endpoint(server: Server) -> None:
    handler = await login(server.url, "handler")
    viewer = await login(server.url, "dispatcher")
    await make_calls(server.url, handler, 4)
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {viewer}"}
    ) as client:
        page = (await client.get("/api/events", params={"since": 0, "limit": 3})).json()
        assert [e["seq"] for e in page["events"]] == sorted(e["seq"] for e in page["events"])
        assert len(page["events"]) == 3
        rest = (await client.get("/api/events", params={"since": page["events"][-1]["seq"]})).json()
        assert rest["events"][0]["seq"] > page["events"][-1]["seq"]
        assert (await client.get("/api/events", params={"since": -1})).status_code == 422


async def test_paging_events_by_last_seq_neither_skips_nor_repeats(api: Api) -> None:
    """`next_since` ends the page: with a small limit and a far head, paging by it walks
    every event once (paging by `last_seq`, the head, skipped all between page and head)."""
    for i in range(7):
        r = await api.as_("handler", "POST", "/api/calls", json=call_body(lat=51.50 + i / 100))
        assert r.status_code == 201, r.text
    everything = (await api.as_("dispatcher", "GET", "/api/events", params={"since": 0})).json()
    head = everything["last_seq"]
    assert len(everything["events"]) >= 7  # an incident.created per call
    seen: list[int] = []
    since = 0
    while since < head:
        page = (
            await api.as_("dispatcher", "GET", "/api/events", params={"since": since, "limit": 2})
        ).json()
        assert since < page["next_since"] <= since + 2 and page["last_seq"] >= head
        assert all(since < e["seq"] <= page["next_since"] for e in page["events"])
        seen += [e["seq"] for e in page["events"]]
        since = page["next_since"]
    assert seen == [e["seq"] for e in everything["events"]]


async def test_a_relay_overtaken_by_another_picks_up_after_it(
    db_url: str, redis: Redis, redis_prefix: str
) -> None:
    """Two relays for a moment (a leader replaced): the stream has events ahead of this
    one. Its append stops at the first it can no longer add, it re-reads where the stream
    is, and goes on after it: every event once, in seq order."""
    writer, relay_conn = await connect(db_url), await connect(db_url)
    key = stream_key(redis_prefix)
    relay = asyncio.create_task(run_relay(relay_conn, redis, redis_prefix))
    try:

        async def stream_seqs() -> list[int]:
            return [int(i.decode().split("-")[0]) for i, _ in await redis.xrange(key)]

        async def relayed_one() -> bool:
            # A relay starting on an empty stream starts at the horizon: what committed
            # before it looked is not its to send. It is live once it sends a new one.
            async with writer.transaction():
                warm = await append_event(writer, "warm", "t")
            await asyncio.sleep(0.05)
            return await _last_is(stream_seqs, warm.seq)

        await wait_for(relayed_one)
        async with writer.transaction():
            early = [await append_event(writer, "early", "t") for _ in range(3)]
        await wait_for(lambda: _last_is(stream_seqs, early[-1].seq))
        async with writer.transaction():
            later = [await append_event(writer, "later", "t") for _ in range(5)]
            # The other relay, faster: the first three of them, before this one sees any.
            for event in later[:3]:
                await redis.xadd(key, {"e": encode_event(event)}, id=f"{event.seq}-0")
        await wait_for(lambda: _last_is(stream_seqs, later[-1].seq))
        seqs = await stream_seqs()
        assert seqs == sorted(set(seqs)) and seqs[-8:] == [e.seq for e in early + later]
        entries = await redis.xrange(key, min=f"{later[3].seq}-0")
        assert [orjson.loads(fields[b"e"])["type"] for _, fields in entries] == ["later"] * 2
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await writer.close()
        await relay_conn.close()


async def _last_is(seqs: Any, seq: int) -> bool:
    got = await seqs()
    return bool(got) and got[-1] == seq
