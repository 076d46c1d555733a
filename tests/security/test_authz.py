"""Who may call what: every operation in the OpenAPI document against every role.

The expected table is written out by hand, so a new route whose roles nobody decided
fails ``test_every_route_has_a_decided_role_set`` instead of silently shipping open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import websocket

from cad.app import create_app
from cad.auth.security import Principal, Role, issue_token
from cad.config import DEV_JWT_SECRET
from tests.conftest import ROOT, Api, Server, call_body, login, make_settings

CH, DISP, SUP, UNIT, ADMIN = "call_handler", "dispatcher", "supervisor", "unit", "admin"
# Another agency's CAD: EIDO exchange only.
PARTNER = "partner"
ROLES = (CH, DISP, SUP, UNIT, ADMIN, PARTNER)
USER_FOR_ROLE = {
    CH: "handler",
    DISP: "dispatcher",
    SUP: "supervisor",
    UNIT: "unit",
    ADMIN: "admin",
    PARTNER: "partner",
}
PUBLIC = "public"
# Carries its own credential in the body (a password, a refresh token): no bearer token
# is asked for, and without the credential the answer is 401.
CREDENTIAL = "credential"
ADMINS = frozenset({ADMIN})
# Every person's role: a partner (a machine) is not among them.
EVERYONE = frozenset({CH, DISP, SUP, UNIT, ADMIN})
STAFF = frozenset({CH, DISP, SUP, ADMIN})
HANDLERS = frozenset({CH, SUP, ADMIN})
DISPATCHERS = frozenset({DISP, SUP, ADMIN})
SUPERVISORS = frozenset({SUP, ADMIN})
UNIT_OR_DISPATCH = frozenset({UNIT, DISP, SUP, ADMIN})

# (method, path) -> roles allowed, or PUBLIC. Unit rows are for the unit's *own* unit and
# the incident it is assigned to; the other-unit cases are in the tests below.
EXPECTED: dict[tuple[str, str], frozenset[str] | str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("POST", "/api/auth/token"): CREDENTIAL,
    ("POST", "/api/auth/refresh"): CREDENTIAL,
    ("POST", "/api/auth/password"): CREDENTIAL,
    # Anyone may end their own session; without one there is nothing to end.
    ("POST", "/api/auth/signout"): PUBLIC,
    ("GET", "/api/users"): ADMINS,
    ("POST", "/api/users"): ADMINS,
    ("GET", "/api/users/{username}"): ADMINS,
    ("PATCH", "/api/users/{username}"): ADMINS,
    ("POST", "/api/users/{username}/end-sessions"): ADMINS,
    ("POST", "/api/users/{username}/unlock"): ADMINS,
    ("GET", "/api/access-log"): SUPERVISORS,
    ("GET", "/api/incidents/{incident_id}/eido"): DISPATCHERS | {PARTNER},
    ("POST", "/api/eido"): SUPERVISORS | {PARTNER},
    ("GET", "/api/subscriptions"): ADMINS,
    ("POST", "/api/subscriptions"): ADMINS,
    ("DELETE", "/api/subscriptions/{subscription_id}"): ADMINS,
    ("GET", "/api/incident-types"): EVERYONE,
    ("GET", "/api/grades"): EVERYONE,
    ("GET", "/api/areas"): EVERYONE,
    ("GET", "/api/map-config"): EVERYONE,
    ("POST", "/api/calls"): HANDLERS,
    ("POST", "/api/calls/grade-preview"): HANDLERS,
    ("GET", "/api/incidents"): STAFF,
    ("GET", "/api/incidents/open"): STAFF,
    ("GET", "/api/incidents/summary"): STAFF,
    ("GET", "/api/incidents/{incident_id}"): EVERYONE,
    ("POST", "/api/incidents/{incident_id}/grade"): DISPATCHERS,
    # A unit remarks on its own job only (test_unit_acts_only_for_itself).
    ("POST", "/api/incidents/{incident_id}/remarks"): EVERYONE,
    ("POST", "/api/incidents/{incident_id}/close"): DISPATCHERS,
    ("POST", "/api/incidents/{incident_id}/reopen"): DISPATCHERS,
    ("POST", "/api/incidents/{incident_id}/merge"): DISPATCHERS,
    ("GET", "/api/incidents/{incident_id}/recommendations"): DISPATCHERS,
    ("POST", "/api/incidents/{incident_id}/assignments"): DISPATCHERS,
    ("GET", "/api/incidents/{incident_id}/export"): SUPERVISORS,
    ("GET", "/api/units"): STAFF,
    ("GET", "/api/units/me"): EVERYONE,
    ("POST", "/api/units/{unit_id}/status"): UNIT_OR_DISPATCH,
    ("POST", "/api/units/positions"): UNIT_OR_DISPATCH,
    ("POST", "/api/units/{unit_id}/acknowledge"): UNIT_OR_DISPATCH,
    # A unit raises and cancels only its own emergency (test_unit_acts_only_for_itself).
    ("POST", "/api/units/{unit_id}/emergency"): UNIT_OR_DISPATCH,
    ("POST", "/api/units/{unit_id}/emergency/cancel"): UNIT_OR_DISPATCH,
    ("POST", "/api/alarms/{alarm_id}/acknowledge"): DISPATCHERS,
    ("GET", "/api/events"): STAFF,
    ("GET", "/api/stats"): SUPERVISORS,
    ("GET", "/api/alarms"): STAFF,
    # Units too: the unit terminal shows its job's address line in the same words.
    ("GET", "/api/places"): EVERYONE,
    ("GET", "/api/places/reverse"): EVERYONE,
    ("GET", "/api/search"): STAFF,
    ("GET", "/api/marker-categories"): EVERYONE,
    # A unit reads the markers of its own job only (?incident_id=, tests/retrieval).
    ("GET", "/api/markers"): STAFF,
    ("GET", "/api/markers/{marker_id}"): STAFF,
    ("POST", "/api/markers"): SUPERVISORS,
    ("PATCH", "/api/markers/{marker_id}"): SUPERVISORS,
}

MARKER = {
    "category": "dangerous_dog",
    "text": "matrix test dog",
    "lat": 51.5,
    "lng": -0.12,
    "radius_m": 20,
    "review_at": "2099-01-01",
}


@dataclass
class World:
    own_incident: int  # assigned to the unit user's unit (CW11)
    other_incident: int  # never assigned to CW11
    spare_incident: int  # merge target
    own_unit: int
    other_unit: int
    marker: int
    refresh_token: str  # of a session of its own, for the refresh route
    own_assignment: int
    user: str  # an account made for the matrix (its password changed once, by itself)


EIDO_SAMPLE = json.loads(
    (ROOT.parent / "shared" / "standards" / "eido" / "sample_call_transfer_eido.json").read_text()
)
MATRIX_USER = "matrix.user"
MATRIX_TEMP = "temporary pass phrase 1"


async def operations(api: Api) -> list[tuple[str, str]]:
    spec = (await api.client.get("/openapi.json")).json()
    return [(m.upper(), path) for path, ops in spec["paths"].items() for m in ops]


async def build_world(api: Api) -> World:
    async def new_incident() -> int:
        r = await api.as_("handler", "POST", "/api/calls", json=call_body())
        assert r.status_code == 201, r.text
        return int(r.json()["incident"]["id"])

    own, other, spare = await new_incident(), await new_incident(), await new_incident()
    me = await api.as_("unit", "GET", "/api/units/me")
    assert me.status_code == 200, me.text
    own_unit = int(me.json()["id"])
    r = await api.as_(
        "dispatcher", "POST", f"/api/incidents/{own}/assignments", json={"unit_id": own_unit}
    )
    assert r.status_code == 201, r.text
    own_assignment = int(r.json()["assignment_id"])
    units = (await api.as_("dispatcher", "GET", "/api/units?status=available")).json()
    other_unit = next(int(u["id"]) for u in units if int(u["id"]) != own_unit)
    r = await api.as_("supervisor", "POST", "/api/markers", json=MARKER)
    assert r.status_code == 201, r.text
    marker = int(r.json()["id"])
    signed = await api.client.post(
        "/api/auth/token", data={"username": "handler", "password": "handler-999"}
    )
    assert signed.status_code == 200, signed.text
    made = await api.as_(
        "admin", "POST", "/api/users",
        json={"username": MATRIX_USER, "role": "dispatcher", "password": MATRIX_TEMP},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return World(
        own, other, spare, own_unit, other_unit, marker, signed.json()["refresh_token"],
        own_assignment, MATRIX_USER,
    )  # fmt: skip


def request_for(method: str, path: str, w: World) -> dict[str, Any]:
    """A well-formed request for the operation, so an allowed role gets past validation."""
    url = path.format(
        incident_id=w.own_incident, unit_id=w.own_unit, marker_id=w.marker, username=w.user,
        alarm_id=2**40, subscription_id=2**40,
    )  # fmt: skip
    url += {"/api/places": "?q=SE1 7PB", "/api/places/reverse": "?lat=51.5&lng=-0.12"}.get(path, "")
    bodies: dict[str, Any] = {
        "/api/calls": call_body(),
        "/api/calls/grade-preview": {"incident_type": "VIOLENCE", "risk": {"weapons": True}},
        "/api/incidents/{incident_id}/grade": {"grade": "S", "reason": "matrix test"},
        "/api/incidents/{incident_id}/remarks": {"text": "matrix test"},
        "/api/incidents/{incident_id}/close": {"result_code": "NFA", "remarks": "matrix"},
        "/api/incidents/{incident_id}/reopen": {"reason": "matrix test"},
        "/api/incidents/{incident_id}/merge": {"into_id": w.spare_incident, "reason": "matrix"},
        "/api/incidents/{incident_id}/assignments": {"unit_id": w.other_unit},
        "/api/units/{unit_id}/status": {"status": "en_route", "incident_id": w.own_incident},
        "/api/units/positions": [{"unit_id": w.own_unit, "lat": 51.5, "lng": -0.12}],
        "/api/markers": MARKER,
        "/api/markers/{marker_id}": {"text": "matrix test edit"},
        "/api/auth/refresh": {"refresh_token": w.refresh_token},
        "/api/auth/password": {
            "username": w.user, "current_password": MATRIX_TEMP,
            "new_password": "a new pass phrase of mine",
        },
        "/api/auth/signout": {},
        "/api/units/{unit_id}/acknowledge": {"assignment_id": w.own_assignment},
        "/api/units/{unit_id}/emergency": {},
        "/api/units/{unit_id}/emergency/cancel": {"reason": "matrix test"},
        "/api/alarms/{alarm_id}/acknowledge": None,
        "/api/eido": EIDO_SAMPLE,
        "/api/subscriptions": {"name": "matrix", "url": "https://partner.example/eido",
                               "secret": "a matrix test shared secret"},
        "/api/users": {"username": "matrix.new", "role": "call_handler",
                       "password": "temporary pass phrase 2"},
        # Enabling an enabled account: allowed, and it ends no session.
        "/api/users/{username}": {"disabled": False},
        "/api/users/{username}/end-sessions": None,
        "/api/users/{username}/unlock": None,
    }  # fmt: skip
    kw: dict[str, Any] = {"method": method, "url": url}
    if path == "/api/auth/token":
        kw["data"] = {"username": "handler", "password": "handler-999"}
    elif method in ("POST", "PATCH") and bodies[path] is not None:
        kw["json"] = bodies[path]
    return kw


def expired_token(api: Api) -> str:
    principal = Principal(user_id=1, username="handler", role=Role.CALL_HANDLER, unit_id=None)
    return issue_token(principal, api.settings.jwt_secret, ttl_s=-60)


def bad_tokens(api: Api) -> dict[str, str]:
    secret = api.settings.jwt_secret
    claims = {"sub": "1", "name": "admin", "role": "admin", "exp": 4102444800}
    return {
        "garbage": "not-a-jwt",
        "expired": expired_token(api),
        "wrong secret": jwt.encode(claims, "another-secret-of-sufficient-length-xx", "HS256"),
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "unknown role": jwt.encode({**claims, "role": "root"}, secret, "HS256"),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, secret, "HS256"),
    }


def test_every_route_has_a_decided_role_set() -> None:
    # The document needs no database: build the app without starting it.
    spec = create_app(make_settings("postgresql://unused/none", "unused")).openapi()
    ops = {(m.upper(), path) for path, item in spec["paths"].items() for m in item}
    undecided = sorted(ops - EXPECTED.keys())
    stale = sorted(EXPECTED.keys() - ops)
    assert not undecided, (
        f"routes without an entry in EXPECTED (decide who may call them): {undecided}"
    )
    assert not stale, f"EXPECTED lists routes that no longer exist: {stale}"


async def test_role_matrix(api: Api) -> None:
    world = await build_world(api)
    tokens = bad_tokens(api)
    mismatches: list[str] = []
    checked = 0
    # The emergency moves the unit onto a new incident: after everything else.
    for method, path in sorted(await operations(api), key=lambda op: "emergency" in op[1]):
        expected = EXPECTED[(method, path)]
        base = request_for(method, path, world)
        anonymous = await api.client.request(**base)
        checked += 1
        if expected == CREDENTIAL:
            # Its credential is its authority: no token needed, and none is enough.
            if anonymous.status_code != 200:
                mismatches.append(f"{method} {path} with its credential: {anonymous.status_code}")
            bare = await api.client.request(method, base["url"])
            if bare.status_code not in (401, 422):
                mismatches.append(f"{method} {path} without credential: {bare.status_code}")
            continue
        if expected == PUBLIC:
            if anonymous.status_code in (401, 403) or anonymous.status_code >= 500:
                mismatches.append(f"{method} {path} public, anonymous got {anonymous.status_code}")
            continue
        if anonymous.status_code != 401:
            mismatches.append(f"{method} {path} no token: {anonymous.status_code} (want 401)")
        elif anonymous.headers.get("www-authenticate") != "Bearer":
            mismatches.append(f"{method} {path} 401 without WWW-Authenticate: Bearer")
        for name, token in tokens.items():
            r = await api.client.request(**base, headers={"Authorization": f"Bearer {token}"})
            checked += 1
            if r.status_code != 401:
                mismatches.append(f"{method} {path} {name} token: {r.status_code} (want 401)")
        for role in ROLES:
            r = await api.as_(USER_FOR_ROLE[role], **base)
            checked += 1
            allowed = role in expected
            if r.status_code >= 500:
                mismatches.append(f"{method} {path} as {role}: {r.status_code} {r.text[:200]}")
            elif allowed and r.status_code in (401, 403):
                mismatches.append(f"{method} {path} as {role}: {r.status_code}, want allowed")
            elif not allowed and r.status_code != 403:
                mismatches.append(f"{method} {path} as {role}: {r.status_code}, want 403")
    assert checked > 26 * 7
    assert not mismatches, "\n".join(mismatches)


async def test_unit_acts_only_for_itself(api: Api) -> None:
    w = await build_world(api)

    async def as_unit(method: str, url: str, **kw: Any) -> int:
        return (await api.as_("unit", method, url, **kw)).status_code

    # Its own unit and job: allowed.
    assert await as_unit("GET", f"/api/incidents/{w.own_incident}") == 200
    assert (
        await as_unit(
            "POST", "/api/units/positions", json=[{"unit_id": w.own_unit, "lat": 51.5, "lng": -0.1}]
        )
        == 202
    )
    r = await api.as_(
        "unit",
        "POST",
        f"/api/units/{w.own_unit}/status",
        json={"status": "en_route", "incident_id": w.own_incident},
    )
    assert r.status_code == 200, r.text
    # Anyone else's: refused, and nothing changed.
    assert await as_unit("GET", f"/api/incidents/{w.other_incident}") == 403
    remark = {"text": "not my job"}
    assert await as_unit("POST", f"/api/incidents/{w.other_incident}/remarks", json=remark) == 403
    assert await as_unit("POST", f"/api/units/{w.other_unit}/emergency", json={}) == 403
    assert (
        await as_unit("POST", f"/api/units/{w.other_unit}/emergency/cancel", json={"reason": "x"})
        == 403
    )
    ack = {"assignment_id": w.own_assignment}
    assert await as_unit("POST", f"/api/units/{w.other_unit}/acknowledge", json=ack) == 403
    assert await as_unit("GET", "/api/incidents") == 403
    assert await as_unit("GET", "/api/events") == 403
    assert (
        await as_unit("POST", f"/api/units/{w.other_unit}/status", json={"status": "unavailable"})
        == 403
    )
    assert (
        await as_unit(
            "POST",
            "/api/units/positions",
            json=[{"unit_id": w.other_unit, "lat": 51.0, "lng": 0.0}],
        )
        == 403
    )
    mixed = [
        {"unit_id": w.own_unit, "lat": 51.4, "lng": -0.1},
        {"unit_id": w.other_unit, "lat": 51.0, "lng": 0.0},
    ]
    assert await as_unit("POST", "/api/units/positions", json=mixed) == 403
    units = {u["id"]: u for u in (await api.as_("dispatcher", "GET", "/api/units")).json()}
    assert units[w.other_unit]["status"] == "available"
    assert units[w.other_unit]["lat"] != 51.0  # the refused batch wrote nothing
    assert units[w.own_unit]["lat"] == pytest.approx(51.5)
    assert (
        await as_unit(
            "POST", f"/api/incidents/{w.own_incident}/assignments", json={"unit_id": w.other_unit}
        )
        == 403
    )


async def test_call_handler_cannot_dispatch_or_move_units(api: Api) -> None:
    w = await build_world(api)
    for method, url, body in [
        ("POST", f"/api/incidents/{w.other_incident}/assignments", {"unit_id": w.other_unit}),
        ("POST", f"/api/units/{w.other_unit}/status", {"status": "unavailable"}),
        ("POST", "/api/units/positions", [{"unit_id": w.other_unit, "lat": 51.0, "lng": 0.0}]),
        ("POST", f"/api/incidents/{w.other_incident}/close", {"result_code": "NFA"}),
    ]:
        r = await api.as_("handler", method, url, json=body)
        assert r.status_code == 403, (url, r.text)
        assert "call_handler" in r.json()["detail"]
    units = {u["id"]: u for u in (await api.as_("dispatcher", "GET", "/api/units")).json()}
    assert units[w.other_unit]["status"] == "available"
    assert units[w.other_unit]["incident_id"] is None


def _ws_close(url: str) -> tuple[int | None, str]:
    ws = websocket.WebSocket()
    ws.settimeout(10)
    try:
        ws.connect(url)
        frame = ws.recv_data_frame(control_frame=True)[1]
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(frame.data[:2], "big")
            return code, frame.data[2:].decode()
        return None, frame.data.decode()
    finally:
        ws.close()


async def test_websocket_refuses_missing_or_bad_tokens(server: Server, api: Api) -> None:
    base = server.url.replace("http://", "ws://") + "/ws/events"
    # The server runs with the default (test) secret; tokens for it are made the same way.
    assert api.settings.jwt_secret == DEV_JWT_SECRET
    for name, token in {"none": "", **bad_tokens(api)}.items():
        code, reason = _ws_close(f"{base}?token={token}" if token else base)
        assert code == 4401, (name, code, reason)
    good = await login(server.url, "dispatcher")
    code, hello = _ws_close(f"{base}?token={good}")
    assert code is None and '"hello"' in hello
    partner = await login(server.url, "partner")
    code, reason = _ws_close(f"{base}?token={partner}")
    assert code == 4403 and "partner" in reason
