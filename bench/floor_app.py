"""The floor: the least a Python service can do for the same requests.

FastAPI + asyncpg, one INSERT per call (with the same body parsing into a dict), one
UPDATE … FROM unnest per position batch, and a WebSocket fan-out fed by PostgreSQL
LISTEN/NOTIFY sent in the inserting transaction. No auth, validation, grading, events or
Redis: what our API costs on top of this is what the ratios measure.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response

DB_URL = os.environ.get(
    "FLOOR_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/cad_bench_floor"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS floor_calls (
    id bigserial PRIMARY KEY, body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS floor_units (
    id bigint PRIMARY KEY, lat double precision, lng double precision, position_at timestamptz
);
"""


class Hub:
    def __init__(self) -> None:
        self.clients: set[asyncio.Queue[bytes]] = set()

    def publish(self, payload: bytes) -> None:
        for q in self.clients:
            if q.qsize() < 1000:
                q.put_nowait(payload)


def create_app() -> FastAPI:
    hub = Hub()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(DB_URL, min_size=2, max_size=10)
        listener = await asyncpg.connect(DB_URL)
        await listener.add_listener("floor", lambda *a: hub.publish(a[3].encode()))
        state["pool"] = pool
        yield
        await listener.close()
        await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/calls", status_code=201)
    async def calls(request: Request) -> Response:
        body = orjson.loads(await request.body())
        async with state["pool"].acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO floor_calls (body) VALUES ($1::jsonb) RETURNING id, created_at",
                orjson.dumps(body).decode(),
            )
            event = {"seq": row["id"], "at": row["created_at"].isoformat(), "type": "call"}
            await conn.execute("SELECT pg_notify('floor', $1)", orjson.dumps(event).decode())
        return Response(
            orjson.dumps({"id": row["id"]}), status_code=201, media_type="application/json"
        )

    @app.post("/positions", status_code=202)
    async def positions(request: Request) -> Response:
        batch = orjson.loads(await request.body())
        now = datetime.now(UTC)
        async with state["pool"].acquire() as conn:
            await conn.execute(
                """
                UPDATE floor_units u SET lat = p.lat, lng = p.lng, position_at = $4
                FROM unnest($1::bigint[], $2::float8[], $3::float8[]) AS p(id, lat, lng)
                WHERE u.id = p.id
                """,
                [p["unit_id"] for p in batch],
                [p["lat"] for p in batch],
                [p["lng"] for p in batch],
                now,
            )
        return Response(
            b'{"received": %d}' % len(batch), status_code=202, media_type="application/json"
        )

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        q: asyncio.Queue[bytes] = asyncio.Queue()
        hub.clients.add(q)
        try:
            await websocket.send_text('{"type":"hello"}')
            while True:
                await websocket.send_bytes(await q.get())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            hub.clients.discard(q)

    return app
