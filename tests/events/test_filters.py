"""Subscription filters: a console that asks for some areas, grades or kinds of event gets
exactly those, live, in catch-up and in /api/events alike, across reconnects; the hub
works each event out once per distinct filter, never once per socket."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import httpx
import orjson
import pytest
import websockets

from cad.events.filters import KINDS, NO_FILTER, EventFilter, FilterError, parse_filter
from cad.events.hub import Delivery, Hub, Subscriber, batch_frame, encode_event
from cad.events.router import ConsoleStream
from cad.events.writer import Event
from tests.conftest import Api, Server, call_body, login, wait_for

WESTMINSTER = "E09000033"
CAMDEN = "E09000007"
LAMBETH = "E09000022"
# Points in each borough, and the calls made there (grades vary with the type).
PLACES = {WESTMINSTER: (51.5074, -0.1278), CAMDEN: (51.55, -0.16), LAMBETH: (51.47, -0.1)}
TYPES = ["VIOLENCE", "BURGLARY", "NOISE", "THEFT"]


def event(
    seq: int = 1,
    type: str = "incident.created",
    incident_id: int | None = 1,
    unit_id: int | None = None,
    areas: tuple[str, ...] | None = (WESTMINSTER,),
    grade: str | None = "I",
) -> Event:
    return Event(seq, datetime.now(UTC), type, incident_id, unit_id, "t:t", {}, areas, grade)


def parse(areas: str = "", grades: str = "", kinds: str = "") -> EventFilter:
    known = {WESTMINSTER, CAMDEN, LAMBETH}
    return parse_filter(
        areas,
        grades,
        kinds,
        known_area=lambda c: c if c in known else None,
        known_grades={"I", "S", "E", "R"},
    )


# --- the matcher and the parser, pure -----------------------------------------------


def test_parse_empty_is_no_restriction_and_values_are_sets() -> None:
    assert parse() == NO_FILTER
    assert parse(areas=" , ") == NO_FILTER
    f = parse(areas=f"{CAMDEN},{WESTMINSTER},{CAMDEN}", grades="S,I", kinds="unit")
    assert f == EventFilter(frozenset({CAMDEN, WESTMINSTER}), frozenset("IS"), frozenset({"unit"}))
    assert hash(f) == hash(parse(areas=f"{WESTMINSTER},{CAMDEN}", grades="I,S", kinds="unit"))
    assert f.describe() == {
        "areas": sorted([CAMDEN, WESTMINSTER]),
        "grades": ["I", "S"],
        "kinds": ["unit"],
    }
    assert NO_FILTER.describe() == {"areas": None, "grades": None, "kinds": None}


@pytest.mark.parametrize(
    ("field", "kwargs", "reason"),
    [
        ("areas", {"areas": f"{CAMDEN},NOWHERE"}, "unknown area code 'NOWHERE'"),
        ("grades", {"grades": "I,Z"}, "unknown grade 'Z'"),
        ("kinds", {"kinds": "incident,assignment"}, "unknown kind 'assignment'"),
    ],
)
def test_parse_names_the_field_and_the_unknown_value(
    field: str, kwargs: dict[str, str], reason: str
) -> None:
    with pytest.raises(FilterError) as caught:
        parse(**kwargs)
    assert caught.value.field == field and caught.value.reason == reason
    assert str(caught.value) == f"{field}: {reason}"


def test_kinds_are_the_ones_the_service_writes() -> None:
    assert {"incident", "call", "unit", "auth", "marker", "alarm"} <= KINDS


def test_matches_areas_overlap_global_and_old_events() -> None:
    westminster = parse(areas=WESTMINSTER)
    assert westminster.matches(event(areas=(WESTMINSTER,)))
    assert not westminster.matches(event(areas=(CAMDEN,)))
    # A Camden unit sent to a Westminster job concerns both.
    both = event(type="unit.assigned", unit_id=7, areas=(CAMDEN, WESTMINSTER))
    assert westminster.matches(both) and parse(areas=CAMDEN).matches(both)
    assert not parse(areas=LAMBETH).matches(both)
    # About neither an incident nor a unit (or neither placed): global.
    assert westminster.matches(event(type="auth.locked", incident_id=None, areas=()))
    # Written before areas were recorded.
    assert westminster.matches(event(areas=None, grade=None))


def test_matches_grades_only_constrain_incident_events() -> None:
    urgent = parse(grades="I,S")
    assert urgent.matches(event(grade="S"))
    assert not urgent.matches(event(grade="E"))
    assert urgent.matches(event(type="unit.status", incident_id=None, unit_id=3, grade=None))
    assert urgent.matches(event(grade=None))  # an old row


def test_matches_kinds_and_all_dimensions_together() -> None:
    f = parse(areas=WESTMINSTER, grades="I", kinds="incident,unit")
    assert f.matches(event())
    assert not f.matches(event(type="call.linked"))
    assert not f.matches(event(grade="R"))
    assert not f.matches(event(areas=(LAMBETH,)))
    assert parse(kinds="unit").matches(event(type="unit"))  # no dot: the type is the kind
    assert not parse(kinds="unit").matches(event(type="units.x"))


# --- the hub: once per distinct filter, not per socket ---------------------------------


def _hub(queue_max: int = 1000) -> Hub:
    # Delivery needs neither the pool nor Redis: only the read loop does.
    return Hub(cast(Any, None), cast(Any, None), "unused", queue_max=queue_max)


def _stream(n: int) -> list[Event]:
    areas = [(WESTMINSTER,), (CAMDEN,), (LAMBETH,), (), (CAMDEN, WESTMINSTER)]
    grades = ["I", "S", "E", "R"]
    return [
        event(seq=i, incident_id=i, areas=areas[i % 5], grade=grades[i % 4])
        for i in range(1, n + 1)
    ]


async def test_each_event_is_encoded_once_per_worker_however_many_sockets() -> None:
    hub = _hub()
    filters = [parse(areas=WESTMINSTER), parse(grades="I,S"), parse(kinds="incident")]
    subs = [hub.subscribe(filters[i % 3]) for i in range(30)]
    assert len(hub.groups) == 3
    events = _stream(40)
    for e in events[:20]:
        await hub._deliver(e)  # one event a cycle
    await hub._deliver_cycle(events[20:])  # one cycle of 20
    # Per socket this would be 30 x the events each socket got; per filter, 3 x 40 at
    # most; shared across filters, each event once at most.
    assert hub.encodes == len([e for e in events if any(f.matches(e) for f in filters)])
    got = sum(s.queue.qsize() for s in subs)
    assert got > 10 * len(events)  # sockets got plenty: the bound is not an empty stream
    for i, f in enumerate(filters):
        group = [s for s in subs if s.key.filter == f]
        frames = [_drain(s) for s in group]
        assert [d.events[0] for d in frames[0]] == [e for e in events if f.matches(e)], i
        for other in frames[1:]:
            # The very same Delivery objects, bytes and all: nothing rebuilt per socket.
            assert all(a is b for a, b in zip(other, frames[0], strict=True))
    assert all(d is not None and d.payload == encode_event(d.events[0]) for d in frames[0])


def _drain(sub: Subscriber) -> list[Delivery]:
    out = []
    while not sub.queue.empty():
        delivery = sub.queue.get_nowait()
        assert delivery is not None
        out.append(delivery)
    return out


async def test_batch_groups_get_one_frame_per_cycle() -> None:
    hub = _hub()
    wm, urgent = parse(areas=WESTMINSTER), parse(grades="I")
    batch_subs = [hub.subscribe(wm, batch=True) for _ in range(10)]
    batch_subs += [hub.subscribe(urgent, batch=True) for _ in range(10)]
    plain = [hub.subscribe(wm) for _ in range(10)]
    assert len(hub.groups) == 3
    events = _stream(50)
    await hub._deliver_cycle(events[:25])
    await hub._deliver_cycle(events[25:])
    assert hub.cycles == 2
    assert hub.batch_frames == 4  # two batch groups, two cycles
    assert hub.encodes <= len(events)
    for sub in batch_subs:
        assert sub.queue.qsize() == 2
        first, second = sub.queue.get_nowait(), sub.queue.get_nowait()
        assert first is not None and second is not None
        body = orjson.loads(first.payload)
        assert body["type"] == "batch"
        assert [e["seq"] for e in body["events"]] == [e.seq for e in first.events]
        assert first.upto == 25 and second.upto == 50
        assert [e for e in (*first.events, *second.events)] == [
            e for e in events if sub.key.filter.matches(e)
        ]
    assert plain[0].queue.qsize() == len([e for e in events if wm.matches(e)])


async def test_slow_batch_consumer_is_dropped_and_the_rest_are_not() -> None:
    hub = _hub(queue_max=2)
    slow = hub.subscribe(NO_FILTER, batch=True)
    fast = hub.subscribe(NO_FILTER, batch=True)
    for i in range(4):
        await hub._deliver_cycle(_stream(4 * (i + 1))[4 * i :])
        fast.queue.get_nowait()
    assert slow.dropped_reason is not None and "2 frames behind" in slow.dropped_reason
    assert fast.dropped_reason is None


async def test_unsubscribing_the_last_socket_ends_the_group() -> None:
    hub = _hub()
    a, b = hub.subscribe(parse(kinds="unit")), hub.subscribe(parse(kinds="unit"))
    hub.unsubscribe(a)
    assert len(hub.groups) == 1
    hub.unsubscribe(b)
    assert hub.groups == {} and hub.subscribers == set()
    await hub._deliver_cycle(_stream(3))
    assert hub.encodes == 0  # nobody listening: nothing encoded


class _Socket:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        self.frames.append(data)


async def test_a_batch_straddling_the_catch_up_point_is_trimmed() -> None:
    from cad.auth.security import Principal, Role

    hub = _hub()
    socket = _Socket()
    dispatcher = Principal(1, "d", Role.DISPATCHER, None)
    stream = ConsoleStream(cast(Any, socket), cast(Any, None), hub, dispatcher, NO_FILTER, True)
    events = _stream(6)
    stream.last_sent = 3  # catch-up sent up to 3
    frame = batch_frame([encode_event(e) for e in events])
    await stream.deliver(Delivery(tuple(events), frame, 6, batch=True))
    await stream.deliver(Delivery(tuple(events[:2]), frame, 2, batch=True))  # all old
    assert len(socket.frames) == 1
    assert [e["seq"] for e in orjson.loads(socket.frames[0])["events"]] == [4, 5, 6]
    assert stream.last_sent == 6
    # Whole: sent as built, not re-encoded.
    later = _stream(8)[6:]
    built = batch_frame([encode_event(e) for e in later])
    await stream.deliver(Delivery(tuple(later), built, 8, batch=True))
    assert socket.frames[-1] is built


# --- written with the event: areas and grade ------------------------------------------


async def test_events_record_their_areas_and_grade_when_written(api: Api) -> None:
    r = await api.as_("handler", "POST", "/api/calls", json=call_body(lat=51.5074, lng=-0.1278))
    assert r.status_code == 201, r.text
    incident = r.json()["incident"]
    async with api.tx() as conn:
        camden_unit = await conn.fetchrow(
            "SELECT id, area_code FROM units WHERE area_code = $1 AND status = 'available' "
            "ORDER BY id LIMIT 1",
            CAMDEN,
        )
        grade = await conn.fetchval("SELECT grade FROM incidents WHERE id = $1", incident["id"])
    assert camden_unit is not None
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{incident['id']}/assignments",
        json={"unit_id": camden_unit["id"]},
    )
    assert r.status_code == 201, r.text
    new_grade = "R" if grade != "R" else "E"
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{incident['id']}/grade",
        json={"grade": new_grade, "reason": "test"},
    )
    assert r.status_code == 200, r.text
    timeline = (await api.as_("dispatcher", "GET", f"/api/incidents/{incident['id']}")).json()[
        "timeline"
    ]
    by_type = {e["type"]: e for e in timeline}
    assert by_type["incident.created"]["areas"] == [WESTMINSTER]
    assert by_type["incident.created"]["grade"] == grade
    assert by_type["unit.assigned"]["areas"] == sorted([CAMDEN, WESTMINSTER])
    assert by_type["incident.graded"]["grade"] == new_grade  # as the change left it
    page = (await api.as_("dispatcher", "GET", "/api/events", params={"since": 0})).json()
    mine = [e for e in page["events"] if e["incident_id"] == incident["id"]]
    assert [(e["areas"], e["grade"]) for e in mine] == [(e["areas"], e["grade"]) for e in timeline]


async def test_events_endpoint_refuses_unknown_values_naming_the_field(api: Api) -> None:
    for field, value, words in [
        ("areas", "NOWHERE", "unknown area code 'NOWHERE'"),
        ("grades", "Z", "unknown grade 'Z'"),
        ("kinds", "bogus", "unknown kind 'bogus'"),
    ]:
        r = await api.as_("dispatcher", "GET", "/api/events", params={field: value})
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["errors"] == [{"field": field, "reason": words}]


async def test_events_endpoint_paging_with_a_filter_neither_skips_nor_repeats(api: Api) -> None:
    for i in range(9):
        where = list(PLACES.values())[i % 3]
        r = await api.as_(
            "handler", "POST", "/api/calls", json=call_body(TYPES[i % 4], where[0], where[1])
        )
        assert r.status_code == 201, r.text
    params = {"areas": f"{WESTMINSTER},{LAMBETH}", "grades": "I,S,E"}
    whole = (await api.as_("dispatcher", "GET", "/api/events", params=params | {"since": 0})).json()
    unfiltered = (await api.as_("dispatcher", "GET", "/api/events", params={"since": 0})).json()
    wanted = parse(**params)
    expected = [e["seq"] for e in unfiltered["events"] if wanted.matches(_event_of(e))]
    assert [e["seq"] for e in whole["events"]] == expected
    assert 0 < len(expected) < len(unfiltered["events"])
    seen: list[int] = []
    since = 0
    while since < whole["last_seq"]:
        page = (
            await api.as_(
                "dispatcher", "GET", "/api/events", params=params | {"since": since, "limit": 2}
            )
        ).json()
        assert page["next_since"] == min(since + 2, page["last_seq"])
        seen += [e["seq"] for e in page["events"]]
        since = page["next_since"]
    assert seen == expected


def _event_of(data: dict[str, Any]) -> Event:
    areas = data["areas"]
    return Event(
        data["seq"],
        datetime.fromisoformat(data["at"]),
        data["type"],
        data["incident_id"],
        data["unit_id"],
        data["actor"],
        data["data"],
        None if areas is None else tuple(areas),
        data["grade"],
    )


# --- over the socket, against a real server ------------------------------------------


class Console:
    """A WebSocket console with a filter, recording the events it gets (batched or not)."""

    def __init__(self, url: str, token: str, since: int | None = 0, **params: str) -> None:
        self.url = url.replace("http", "ws") + f"/ws/events?token={token}"
        if since is not None:
            self.url += f"&since={since}"
        for name, value in params.items():
            self.url += f"&{name}={value}"
        self.events: list[dict[str, Any]] = []
        self.frames = 0
        self.batches = 0
        self.hello: dict[str, Any] | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events]

    async def __aenter__(self) -> Console:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async with websockets.connect(self.url, max_size=2**22) as ws:
            async for message in ws:
                data = orjson.loads(message)
                if data.get("type") == "hello" and "seq" not in data:
                    self.hello = data
                elif data.get("type") == "batch" and "seq" not in data:
                    self.frames += 1
                    self.batches += 1
                    self.events += data["events"]
                elif data.get("type") != "positions" or "seq" in data:
                    self.frames += 1
                    self.events.append(data)
            self.close_code, self.close_reason = ws.close_code, ws.close_reason

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await self._task

    async def wait_hello(self, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.hello is None:
            assert self._task is not None
            if self._task.done():
                self._task.result()
                raise AssertionError(f"closed {self.close_code}: {self.close_reason}")
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)


async def _all_events(url: str, token: str, **params: str) -> tuple[list[dict[str, Any]], int]:
    """Every event /api/events gives with these filter params, paged; and the head."""
    out: list[dict[str, Any]] = []
    since = 0
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        while True:
            r = await client.get("/api/events", params=params | {"since": since, "limit": 5000})
            assert r.status_code == 200, r.text
            page = r.json()
            out += page["events"]
            since = page["next_since"]
            if since >= page["last_seq"]:
                return out, page["last_seq"]


async def _make_calls(url: str, token: str, n: int) -> None:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        for i in range(n):
            lat, lng = list(PLACES.values())[i % 3]
            body = call_body(
                TYPES[i % 4], lat + (i // 3) * 0.001, lng, risk={"ongoing": i % 2 == 0}
            )
            r = await client.post("/api/calls", json=body)
            assert r.status_code == 201, r.text


async def _unit_moves(url: str, token: str, area: str) -> bool:
    events, _ = await _all_events(url, token, areas=area, kinds="unit")
    return any(e["type"] == "unit.assigned" for e in events)


async def _settle(url: str, token: str, console: Console, **params: str) -> list[int]:
    """Wait until the console has what /api/events (same filter) has up to its head."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        expected, _head = await _all_events(url, token, **params)
        want = [e["seq"] for e in expected]
        got = console.seqs
        if want and got[: len(want)] == want:
            return want
        assert asyncio.get_running_loop().time() < deadline, (params, want[-5:], got[-5:])
        await asyncio.sleep(0.2)


async def test_live_consoles_get_only_what_their_filter_matches(server: Server) -> None:
    handler = await login(server.url, "handler")
    viewer = await login(server.url, "dispatcher")
    await _make_calls(server.url, handler, 6)  # some backlog for the catch-up
    asked = {
        "areas": {"areas": WESTMINSTER},
        "grades": {"grades": "I"},
        "kinds": {"kinds": "unit"},
        "all3": {"areas": f"{CAMDEN},{LAMBETH}", "grades": "S,E,R", "kinds": "incident,call"},
        "batched": {"areas": WESTMINSTER, "batch": "1"},
    }
    async with contextlib.AsyncExitStack() as stack:
        consoles = {
            name: await stack.enter_async_context(Console(server.url, viewer, since=0, **params))
            for name, params in asked.items()
        }
        live = await stack.enter_async_context(
            Console(server.url, viewer, since=None, areas=WESTMINSTER, batch="1")
        )
        for console in (*consoles.values(), live):
            await console.wait_hello()
        await _make_calls(server.url, handler, 18)
        # The engine sends units to the urgent ones: wait for a Westminster unit's move.
        await wait_for(lambda: _unit_moves(server.url, viewer, WESTMINSTER), timeout=20)
        results: dict[str, list[int]] = {}
        for name, console in consoles.items():
            params = {k: v for k, v in asked[name].items() if k != "batch"}
            results[name] = await _settle(server.url, viewer, console, **params)
        # Joining now, its backlog comes from PostgreSQL: a page a frame.
        late = await stack.enter_async_context(
            Console(server.url, viewer, since=0, areas=WESTMINSTER, batch="1")
        )
        await _settle(server.url, viewer, late, areas=WESTMINSTER)
    everything, _ = await _all_events(server.url, viewer)
    by_seq = {e["seq"]: e for e in everything}

    # Each console got exactly /api/events' set for its filter (checked in _settle), in
    # order, each once; and that set is what the filter says, from the recorded fields.
    for name, console in consoles.items():
        assert len(set(console.seqs)) == len(console.seqs), name
        assert console.seqs == sorted(console.seqs), name
        assert 0 < len(results[name]) < len(everything), name
    for seq in results["areas"]:
        e = by_seq[seq]
        assert not e["areas"] or WESTMINSTER in e["areas"]
        if e["type"] == "incident.created":
            assert e["data"]["area_code"] == WESTMINSTER
    created = [e for e in everything if e["type"] == "incident.created"]
    westminster = {e["seq"] for e in created if e["data"]["area_code"] == WESTMINSTER}
    assert westminster and westminster <= set(results["areas"])
    assert not {e["seq"] for e in created} - westminster & set(results["areas"])
    # Unit events of units based there come too (the engine sends local units first).
    units = [by_seq[s] for s in results["areas"] if by_seq[s]["type"].startswith("unit.")]
    assert units
    for seq in results["grades"]:
        e = by_seq[seq]
        assert e["incident_id"] is None or e["grade"] in (None, "I")
    assert {by_seq[s]["type"].split(".")[0] for s in results["kinds"]} == {"unit"}
    for seq in results["all3"]:
        e = by_seq[seq]
        assert e["type"].split(".")[0] in ("incident", "call")
        assert e["grade"] in ("S", "E", "R") or e["incident_id"] is None
        assert not e["areas"] or {CAMDEN, LAMBETH} & set(e["areas"])

    # Batched: the same set as one frame per event, in batch frames only, fewer of them.
    assert consoles["batched"].seqs[: len(results["areas"])] == results["areas"]
    assert consoles["batched"].frames == consoles["batched"].batches > 0
    assert late.frames == late.batches and late.frames < len(results["areas"]) / 2
    assert consoles["areas"].batches == 0
    # Hello echoes the filter as accepted.
    hello = consoles["all3"].hello
    assert hello is not None and hello["batch"] is False
    assert hello["filter"] == {
        "areas": sorted([CAMDEN, LAMBETH]),
        "grades": ["E", "R", "S"],
        "kinds": ["call", "incident"],
    }
    assert live.hello is not None and live.hello["batch"] is True
    assert live.hello["filter"] == {"areas": [WESTMINSTER], "grades": None, "kinds": None}
    start = live.hello["last_seq"]
    # What it got up to the moment the others settled is theirs after its start; the
    # engine goes on moving units, so it may have more (or, not yet settled, fewer).
    theirs = [s for s in results["areas"] if s > start]
    shared = min(len(live.seqs), len(theirs))
    assert shared > 0
    assert live.seqs[:shared] == theirs[:shared]


async def test_resume_with_a_filter_is_exact_across_reconnects(server: Server) -> None:
    handler = await login(server.url, "handler")
    viewer = await login(server.url, "dispatcher")
    params = {"areas": f"{WESTMINSTER},{CAMDEN}", "grades": "I,S", "kinds": "incident,unit"}
    query = "&".join(f"{k}={v}" for k, v in params.items())
    received: list[int] = []
    writes = asyncio.create_task(_make_calls(server.url, handler, 45))
    last = 0
    connections = 0
    got_per_connection: list[int] = []
    deadline = asyncio.get_running_loop().time() + 90
    for batch in ["1", "0"] * 1000:
        assert asyncio.get_running_loop().time() < deadline, (connections, last)
        url = server.url.replace("http", "ws")
        url += f"/ws/events?token={viewer}&since={last}&{query}&batch={batch}"
        connections += 1
        got_per_connection.append(len(received))
        async with websockets.connect(url, open_timeout=5, close_timeout=2, max_queue=None) as ws:
            with contextlib.suppress(TimeoutError):
                for _ in range(4):
                    data = orjson.loads(await asyncio.wait_for(ws.recv(), 0.3))
                    if data.get("type") == "hello":
                        assert data["filter"]["grades"] == ["I", "S"]
                        continue
                    for e in data["events"] if data.get("type") == "batch" else [data]:
                        received.append(e["seq"])
                        last = e["seq"]
        if writes.done():
            expected, head = await _all_events(server.url, viewer, **params)
            if [e["seq"] for e in expected] == received[: len(expected)] and (
                not expected or last >= expected[-1]["seq"]
            ):
                break
    await writes
    # Resumed, not read in one go: several later connections picked up where the one
    # before had stopped (a count of connections depended on how fast the calls went).
    ends = [*got_per_connection[1:], len(received)]
    resumed = [b - a for a, b in zip(got_per_connection, ends, strict=True)]
    assert sum(1 for n in resumed[1:] if n) >= 2, resumed
    assert len(received) == len(set(received))
    assert [s for s in received if s <= head] == [e["seq"] for e in expected]
    assert expected


async def test_websocket_refuses_unknown_filter_values(server: Server) -> None:
    viewer = await login(server.url, "dispatcher")
    base = server.url.replace("http", "ws") + f"/ws/events?token={viewer}"
    for query, reason in [
        ("areas=NOWHERE", "areas: unknown area code 'NOWHERE'"),
        (f"areas={CAMDEN}&grades=Z", "grades: unknown grade 'Z'"),
        ("kinds=incident,assignment", "kinds: unknown kind 'assignment'"),
        ("batch=2", "batch: must be 1 or 0"),
    ]:
        async with websockets.connect(f"{base}&{query}") as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
        assert (ws.close_code, ws.close_reason) == (4422, reason), query


async def test_a_unit_console_keeps_its_own_jobs_and_its_filter(server: Server) -> None:
    conn = await asyncpg.connect(server.env["CAD_DATABASE_URL"])
    try:
        unit_id = await conn.fetchval("SELECT unit_id FROM users WHERE username = 'unit'")
    finally:
        await conn.close()
    handler = await login(server.url, "handler")
    dispatcher = await login(server.url, "dispatcher")
    unit = await login(server.url, "unit")
    async with Console(server.url, unit, since=None, kinds="incident") as console:
        await console.wait_hello()
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {dispatcher}"}, timeout=30
        ) as client:
            for _ in range(20):
                r = await client.post(
                    "/api/calls",
                    json=call_body("BURGLARY", *PLACES[WESTMINSTER]),
                    headers={"Authorization": f"Bearer {handler}"},
                )
                assert r.status_code == 201, r.text
                incident_id = r.json()["incident"]["id"]
                r = await client.post(
                    f"/api/incidents/{incident_id}/assignments", json={"unit_id": unit_id}
                )
                if r.status_code == 201:
                    break
                await asyncio.sleep(0.5)  # the unit is busy (the engine sent it): again
            assert r.status_code == 201, r.text
            r = await client.post(f"/api/incidents/{incident_id}/remarks", json={"text": "hi"})
            assert r.status_code == 201, r.text
        deadline = asyncio.get_running_loop().time() + 10
        while not any(e["type"] == "incident.remark" for e in console.events):
            assert asyncio.get_running_loop().time() < deadline, console.events
            await asyncio.sleep(0.05)
    conn = await asyncpg.connect(server.env["CAD_DATABASE_URL"])
    try:
        jobs = await conn.fetch("SELECT incident_id FROM assignments WHERE unit_id = $1", unit_id)
    finally:
        await conn.close()
    # Only its filter's kind, only about its own jobs (the engine may have sent it too).
    assert {e["type"].split(".")[0] for e in console.events} == {"incident"}
    assert {e["incident_id"] for e in console.events} <= {r["incident_id"] for r in jobs}
