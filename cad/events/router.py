"""Catch-up over HTTP and the live stream over WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from cad.auth.security import Principal, Role, decode_token
from cad.db.pool import DB_DOWN_ERRORS
from cad.deps import Staff, StateDep, tx
from cad.errors import CADError
from cad.events import repository
from cad.events.writer import Event
from cad.http import JSON
from cad.observability import EVENTS_FANNED, WS_CLIENTS_DROPPED
from cad.state import AppState

log = structlog.get_logger(__name__)

router = APIRouter(tags=["events"])

PAGE = 500


@router.get("/api/events", response_class=JSON)
async def list_events(
    state: StateDep,
    _: Staff,
    since: Annotated[int, Query(ge=0, lt=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> Any:
    """Events after ``since``, in seq order: the consoles' catch-up and the polling fallback."""
    async with tx(state) as conn:
        events = await repository.events_after(conn, since, limit)
        head = await repository.last_seq(conn)
    return {"events": [e.to_dict() for e in events], "last_seq": head}


class UnitFilter:
    """A unit's console sees its own unit's events and its current job's."""

    def __init__(self, unit_id: int) -> None:
        self.unit_id = unit_id
        self.incidents: set[int] = set()

    def __call__(self, event: Event) -> bool:
        if event.unit_id == self.unit_id:
            if event.incident_id is not None:
                self.incidents.add(event.incident_id)
            return True
        return event.incident_id is not None and event.incident_id in self.incidents


@router.websocket("/ws/events")
async def events_ws(websocket: WebSocket, token: str = "", since: int | None = None) -> None:
    state: AppState = websocket.app.state.cad
    try:
        principal: Principal = decode_token(token, state.settings.jwt_secret)
    except CADError as exc:
        await websocket.close(code=4401, reason=exc.detail)
        return
    if since is not None and not 0 <= since < 2**62:
        await websocket.close(code=4422, reason="since must be a non-negative integer")
        return
    hub = state.hub
    assert hub is not None
    await websocket.accept()
    keep = (
        UnitFilter(principal.unit_id) if principal.role is Role.UNIT and principal.unit_id else None
    )
    # Subscribe before reading the backlog, so nothing committed in between is missed;
    # the seq check below drops what both deliver.
    sub = hub.subscribe()
    last_sent = -1
    sent = 0

    async def send(event: Event) -> None:
        nonlocal last_sent, sent
        if event.seq <= last_sent:
            return
        last_sent = event.seq
        if keep is not None and not keep(event):
            return
        await websocket.send_bytes(orjson.dumps(event.to_dict()))
        sent += 1

    reader = asyncio.create_task(_drain_client(websocket))
    try:
        if since is None:
            last_sent = hub.last_seq
            await websocket.send_text(
                orjson.dumps({"type": "hello", "last_seq": last_sent, "mode": hub.mode}).decode()
            )
        else:
            last_sent = since
            await websocket.send_text(
                orjson.dumps({"type": "hello", "since": since, "mode": hub.mode}).decode()
            )
            while True:
                async with tx(state) as conn:
                    backlog = await repository.events_after(conn, last_sent, PAGE)
                for event in backlog:
                    await send(event)
                if len(backlog) < PAGE:
                    break
        while True:
            getter = asyncio.create_task(sub.queue.get())
            closed = asyncio.create_task(sub.closed.wait())
            done, _ = await asyncio.wait(
                {getter, closed, reader}, return_when=asyncio.FIRST_COMPLETED
            )
            if reader in done:
                getter.cancel()
                closed.cancel()
                break
            if getter in done:
                closed.cancel()
                item = getter.result()
                if item is None:
                    break
                await send(item)
                EVENTS_FANNED.inc()
                continue
            getter.cancel()
            # Dropped: tell the client why and where to resume, then close.
            while not sub.queue.empty():
                pending = sub.queue.get_nowait()
                if pending is not None:
                    await send(pending)
            WS_CLIENTS_DROPPED.inc()
            log.warning("ws.dropped", reason=sub.dropped_reason, last_seq=last_sent)
            await websocket.close(
                code=4408, reason=f"{sub.dropped_reason}; last_seq={last_sent}"[:120]
            )
            break
    except (WebSocketDisconnect, RuntimeError):
        pass
    except (*DB_DOWN_ERRORS, CADError) as exc:  # type: ignore[misc]
        with contextlib.suppress(Exception):
            await websocket.close(code=1011, reason=f"catch-up failed: {type(exc).__name__}")
    finally:
        hub.unsubscribe(sub)
        reader.cancel()


async def _drain_client(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()
