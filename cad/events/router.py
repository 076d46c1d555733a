"""Catch-up over HTTP and the live stream over WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from cad.auth.cookies import ACCESS_COOKIE, same_origin
from cad.auth.security import Principal, Role, decode_token
from cad.db.pool import DB_DOWN_ERRORS, DB_DOWN_OR_SLOW
from cad.deps import Staff, StateDep, tx
from cad.errors import CADError, Unavailable
from cad.events import repository
from cad.events.filters import (
    KINDS,
    NO_FILTER,
    EventFilter,
    FilterError,
    parse_filter,
)
from cad.events.horizon import Horizon
from cad.events.hub import (
    BATCH_HEAD,
    BATCH_TAIL,
    Delivery,
    GroupKey,
    Hub,
    Item,
    Positions,
    Subscriber,
    batch_frame,
    encode_event,
)
from cad.events.schemas import EventsPageOut
from cad.events.writer import Event
from cad.http import JSON, returns
from cad.observability import EVENTS_FANNED, WS_CLIENTS_DROPPED
from cad.state import AppState

log = structlog.get_logger(__name__)

router = APIRouter(tags=["events"])

PAGE = 500
POSITIONS_EVERY_S = 2.0


AREAS_DOC = "comma-separated area (borough) codes: events about them, and global ones"
GRADES_DOC = "comma-separated grades: events about incidents of those grades, and the rest"
KINDS_DOC = "comma-separated kinds of event, the type before the dot: " + ", ".join(sorted(KINDS))


@router.get("/api/events", response_class=JSON, responses=returns(EventsPageOut))
async def list_events(
    state: StateDep,
    principal: Staff,
    since: Annotated[int, Query(ge=0, lt=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    areas: Annotated[str, Query(max_length=4000, description=AREAS_DOC)] = "",
    grades: Annotated[str, Query(max_length=200, description=GRADES_DOC)] = "",
    kinds: Annotated[str, Query(max_length=400, description=KINDS_DOC)] = "",
) -> Any:
    """Events after ``since``, in seq order: the consoles' catch-up and polling fallback.

    Never past the safe horizon, so a client that pages with ``since=<last_seq>`` can
    never skip an event that commits late. ``limit`` bounds the seq range of a page:
    page on with ``since=<next_since>``; ``last_seq`` is the head. ``areas``, ``grades``
    and ``kinds`` keep only the matching events, as the WebSocket's filter does; page
    boundaries are the same with a filter as without."""
    wanted = filter_of(state, areas, grades, kinds)
    try:
        async with state.pool.acquire(timeout=state.settings.db_acquire_timeout_s) as conn:
            safe = await Horizon().wait(conn)
            # A page covers the seq range (since, upto]; `next_since` says where it ends, so
            # paging with it neither skips nor repeats (seq can have gaps).
            upto = min(safe, since + limit)
            events = await repository.events_between(conn, since, upto + 1)
    except DB_DOWN_OR_SLOW as exc:
        raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
    # Filtered after reading the page (the same matcher as the hub's, so the same set as
    # the live stream); the page's seq range, and so next_since, is the filter's too.
    key = GroupKey(wanted, accounts=sees_account_events(principal))
    events = [e for e in events if key.admits(e)]
    return {"events": [e.to_dict() for e in events], "last_seq": safe, "next_since": upto}


def filter_of(state: AppState, areas: str, grades: str, kinds: str) -> EventFilter:
    return parse_filter(
        areas, grades, kinds, known_area=state.areas.by_code, known_grades=state.scheme
    )


# Account events (sessions ended, lockouts: filters.ACCOUNT_EVENTS) are for supervisors and
# administrators; the other consoles skip them, page boundaries unchanged.
def sees_account_events(principal: Principal) -> bool:
    return principal.role in (Role.SUPERVISOR, Role.ADMIN)


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


def _both(
    first: Callable[[Event], bool], second: Callable[[Event], bool]
) -> Callable[[Event], bool]:
    """Both must keep the event; the first sees every event (it may learn from it)."""

    def keep(event: Event) -> bool:
        kept = first(event)
        return kept and second(event)

    return keep


@router.websocket("/ws/events")
async def events_ws(
    websocket: WebSocket,
    token: str = "",
    since: int | None = None,
    areas: str = "",
    grades: str = "",
    kinds: str = "",
    batch: str = "",
) -> None:
    state: AppState = websocket.app.state.cad
    # Accept before refusing: a browser sees a close code and reason (4401: sign in
    # again), where a refused handshake would show only a bare failure.
    await websocket.accept()
    principal = await _admit(websocket, state, token, since)
    if principal is None:
        return
    asked = await _asked_for(websocket, state, areas, grades, kinds, batch)
    if asked is None:
        return
    hub = state.hub
    assert hub is not None and state.auth is not None
    stream = ConsoleStream(websocket, state, hub, principal, *asked)
    unwatch = state.auth.guard.watch(principal.session_id, stream.end)
    watcher = asyncio.create_task(_watch_disconnect(websocket, stream.sub))
    try:
        await stream.hello(since)
        await stream.catch_up()
        await stream.follow()
    except (WebSocketDisconnect, RuntimeError):
        pass
    except (*DB_DOWN_ERRORS, CADError) as exc:  # type: ignore[misc]
        with contextlib.suppress(Exception):
            await websocket.close(code=1011, reason=f"catch-up failed: {type(exc).__name__}")
    finally:
        unwatch()
        hub.unsubscribe(stream.sub)
        watcher.cancel()


async def _admit(
    websocket: WebSocket, state: AppState, token: str, since: int | None
) -> Principal | None:
    """The signed-in principal, or None after closing with the reason (4401, 4403, 4422).

    Consoles are signed in by their session cookie, accepted only from this origin (a
    page elsewhere cannot open a socket with it); machine clients pass ``token=``."""
    if not token:
        if not same_origin(websocket):
            await websocket.close(code=4403, reason="cross-origin WebSocket refused")
            return None
        token = websocket.cookies.get(ACCESS_COOKIE, "")
    if not token:
        await websocket.close(code=4401, reason="not authenticated: sign in")
        return None
    try:
        principal: Principal = decode_token(token, state.settings.jwt_secret)
        assert state.auth is not None
        state.auth.guard.check(principal)
    except CADError as exc:
        await websocket.close(code=4401, reason=exc.detail[:120])
        return None
    if principal.role is Role.PARTNER:
        # Another agency's CAD gets EIDO documents, never the live stream.
        await websocket.close(code=4403, reason="role partner may not open the event stream")
        return None
    if since is not None and not 0 <= since < 2**62:
        await websocket.close(code=4422, reason="since must be a non-negative integer")
        return None
    return principal


async def _asked_for(
    websocket: WebSocket, state: AppState, areas: str, grades: str, kinds: str, batch: str
) -> tuple[EventFilter, bool] | None:
    """The filter and framing the console asked for, or None after closing 4422 with the
    field and the value it does not know."""
    try:
        wanted = filter_of(state, areas, grades, kinds)
    except FilterError as exc:
        await websocket.close(code=4422, reason=_reason(str(exc)))
        return None
    if batch not in ("", "0", "1", "false", "true"):
        await websocket.close(code=4422, reason="batch: must be 1 or 0")
        return None
    return wanted, batch in ("1", "true")


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    return text.encode()[:120].decode(errors="ignore")


class ConsoleStream:
    """One console's stream: hello, the backlog from PostgreSQL, then the hub's deliveries,
    each seq at most once and in order, only what its filter matches; a unit sees only its
    own jobs, staff also get position updates. In batch mode each frame holds the matching
    events of one hub cycle (or one page of the backlog)."""

    def __init__(
        self,
        websocket: WebSocket,
        state: AppState,
        hub: Hub,
        principal: Principal,
        wanted: EventFilter = NO_FILTER,
        batch: bool = False,
    ):
        self.websocket = websocket
        self.state = state
        self.hub = hub
        self.wanted = wanted
        self.batch = batch
        own_unit = principal.unit_id if principal.role is Role.UNIT else None
        # What the hub applies for this console, shared with every console that asks the
        # same; and `keep`, what this console alone applies after it.
        self.key = GroupKey(wanted, batch, accounts=sees_account_events(principal))
        self.keep: Callable[[Event], bool] | None = None
        if own_unit:
            # A unit's jobs are learned from its own events, so its filter must see them
            # all: the hub sends it everything, and it keeps its jobs AND its filter.
            self.key = GroupKey(NO_FILTER, batch, accounts=False)
            self.keep = _both(UnitFilter(own_unit), wanted.matches)
        self.staff = own_unit is None
        # Set when the session ends (signed out, disabled, changed): the stream closes 4401.
        self.ended_reason: str | None = None
        # Subscribe before reading the backlog, so nothing committed in between is missed;
        # the seq check in deliver() drops what both deliver.
        self.sub = hub.subscribe(
            self.key.filter, batch=batch, accounts=self.key.accounts, positions=self.staff
        )
        # Where the console stands: every event up to it that it should get has been sent.
        self.last_sent = -1

    def end(self, reason: str) -> None:
        """The guard's call when this console's session ends: wake the sender to close."""
        self.ended_reason = reason
        with contextlib.suppress(asyncio.QueueFull):
            self.sub.queue.put_nowait(None)

    async def deliver(self, delivery: Delivery) -> None:
        """A frame from the hub, as it is unless part of it was sent already (a batch
        straddling the catch-up point) or is not for this console (a unit's jobs)."""
        events = [e for e in delivery.events if e.seq > self.last_sent]
        self.last_sent = max(self.last_sent, delivery.upto)
        if self.keep is not None:
            events = [e for e in events if self.keep(e)]
        if not events:
            return
        if len(events) == len(delivery.events):
            await self.websocket.send_bytes(delivery.payload)
        else:
            await self._send(events)

    async def _send(self, events: list[Event]) -> None:
        if self.batch:
            await self.websocket.send_bytes(batch_frame([encode_event(e) for e in events]))
        else:
            for event in events:
                await self.websocket.send_bytes(encode_event(event))

    async def hello(self, since: int | None) -> None:
        hello: dict[str, Any] = {"type": "hello", "mode": self.hub.mode}
        if since is None:
            self.last_sent = self.hub.last_seq
            hello["last_seq"] = self.last_sent
        else:
            self.last_sent = since
            hello["since"] = since
        hello["filter"] = self.wanted.describe()
        hello["batch"] = self.batch
        await self.websocket.send_text(orjson.dumps(hello).decode())

    async def catch_up(self) -> None:
        """From PostgreSQL to where this worker's hub stands; everything after comes through
        the subscription, in order. The hub only ever stands at a safe horizon, so no
        smaller seq can turn up later: the pages cover every seq up to it, matched by the
        same filter as the hub's."""
        upto = self.hub.last_seq
        while self.last_sent < upto:
            page_end = min(upto, self.last_sent + PAGE)
            async with tx(self.state) as conn:
                backlog = await repository.events_between(conn, self.last_sent, page_end + 1)
            events = [e for e in backlog if self.key.admits(e)]
            if self.keep is not None:
                events = [e for e in events if self.keep(e)]
            self.last_sent = page_end
            if events:
                await self._send(events)

    async def follow(self) -> None:
        """Live deliveries until the client goes, the server stops, or the hub drops a
        consumer too slow to keep up (4408 with the last seq it got, to resume from)."""
        queue = self.sub.queue
        while True:
            item = await queue.get()
            items = [item]
            while not queue.empty():
                items.append(queue.get_nowait())
            fanned = 0
            for delivery in coalesced(items):
                if delivery is None or self.ended_reason is not None:
                    break
                if isinstance(delivery, Positions):
                    await self.websocket.send_bytes(delivery.payload)
                    continue
                await self.deliver(delivery)
                fanned += len(delivery.events)
            if self.ended_reason is not None:
                reason = f"session ended: {self.ended_reason}"[:120]
                await self.websocket.close(code=4401, reason=reason)
                return
            if None in items:
                return  # the watcher saw the connection close
            EVENTS_FANNED.inc(fanned)
            if self.sub.dropped_reason is not None:
                await self._drop(self.sub.dropped_reason)
                return

    async def _drop(self, reason: str) -> None:
        WS_CLIENTS_DROPPED.inc()
        log.warning("ws.dropped", reason=reason, last_seq=self.last_sent)
        await self.websocket.close(code=4408, reason=f"{reason}; last_seq={self.last_sent}"[:120])


def coalesced(items: list[Item]) -> list[Item]:
    """Batch frames that queued up while this console's socket was busy, sent as one: a
    console that falls behind catches up in fewer, larger frames instead of falling
    further behind one send at a time. Joined as bytes, never re-encoded."""
    out: list[Item] = []
    for item in items:
        last = out[-1] if out else None
        if (
            isinstance(item, Delivery)
            and isinstance(last, Delivery)
            and item.batch
            and last.batch
            and item.events
            and last.events
        ):
            payload = last.payload[: -len(BATCH_TAIL)] + b"," + item.payload[len(BATCH_HEAD) :]
            out[-1] = Delivery(last.events + item.events, payload, item.upto, batch=True)
        else:
            out.append(item)
    return out


class MovedUnits:
    """Unit positions for the staff consoles, from this worker's fleet picture (positions
    are too many for the event log): each call gives the units that moved since the last,
    so a board never refetches the fleet to see it move. The hub calls it once per push
    for every console of the worker (Hub.push_positions)."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.sent: dict[int, tuple[float, float]] = {}
        self()  # consoles load their snapshot after they connect: it has these already

    def __call__(self) -> list[dict[str, Any]]:
        moved = []
        for unit in self.state.directory.units.values():
            if unit.lat is None or unit.lng is None:
                continue
            where = (unit.lat, unit.lng)
            if self.sent.get(unit.id) != where:
                self.sent[unit.id] = where
                at = unit.position_at.isoformat() if unit.position_at else None
                moved.append({"id": unit.id, "lat": unit.lat, "lng": unit.lng, "at": at})
        return moved


async def _watch_disconnect(websocket: WebSocket, sub: Subscriber) -> None:
    """One reader per connection: when the client (or a shutting-down server) closes,
    wake the sender, which may be waiting on a quiet queue."""
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        with contextlib.suppress(asyncio.QueueFull):
            sub.queue.put_nowait(None)
