"""Accounts a force can run: lockout, sessions that end, administration, the access log.

In-process app against the real PostgreSQL and Redis; the two-process checks (every
worker refuses within 5 s, WebSockets close) are in test_sessions_across_workers.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cad.config import Settings
from tests.conftest import PASSWORDS, Api, call_body, free_port, running_api

GOOD = "a long pass phrase of my own"


async def _sign_in(api: Api, username: str, password: str | None = None) -> httpx.Response:
    return await api.client.post(
        "/api/auth/token",
        data={"username": username, "password": PASSWORDS.get(username, "x") if password is None
              else password},
    )  # fmt: skip


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _brute_force(api: Api, username: str, attempts: int) -> list[httpx.Response]:
    # All at once: the throttle must hold against concurrent guesses, not just a loop.
    return list(
        await asyncio.gather(
            *(_sign_in(api, username, f"wrong guess {i}") for i in range(attempts))
        )
    )


def _assert_locked_after_five(responses: list[httpx.Response]) -> None:
    codes = sorted(r.status_code for r in responses)
    assert codes.count(401) == 5, codes
    assert codes.count(429) == len(responses) - 5, codes
    for r in responses:
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) > 0
            assert r.json()["code"] == "rate_limited"


async def test_brute_force_locks_real_and_unknown_names_alike(api: Api) -> None:
    real = await _brute_force(api, "dispatcher", 20)
    unknown = await _brute_force(api, "no-such-person", 20)
    _assert_locked_after_five(real)
    _assert_locked_after_five(unknown)
    # Nothing in the answers tells the two apart.
    for a, b in ((real, unknown),):
        assert {r.json()["detail"] for r in a if r.status_code == 401} == {
            r.json()["detail"] for r in b if r.status_code == 401
        }
        retry_a = {r.json()["detail"].split(" in ")[0] for r in a if r.status_code == 429}
        retry_b = {r.json()["detail"].split(" in ")[0] for r in b if r.status_code == 429}
        assert retry_a == retry_b
    # Locked means locked: the right password is refused too, however the name is typed.
    assert (await _sign_in(api, "dispatcher")).status_code == 429
    assert (await _sign_in(api, " Dispatcher", PASSWORDS["dispatcher"])).status_code == 429
    # Other accounts from the same address are unaffected.
    assert (await _sign_in(api, "handler")).status_code == 200

    pool = api.state.pool
    locks = await pool.fetch("SELECT type, data FROM events WHERE type LIKE 'auth.%' ORDER BY seq")
    assert [e["data"]["name"] for e in locks if e["type"] == "auth.locked"] == [
        "dispatcher",
        "no-such-person",
    ]
    r = await api.as_("admin", "POST", "/api/users/dispatcher/unlock")
    assert r.status_code == 200 and r.json()["was_locked"] is True, r.text
    assert (await _sign_in(api, "dispatcher")).status_code == 200
    unlocked = await pool.fetch("SELECT data FROM events WHERE type = 'auth.unlocked'")
    assert [e["data"]["name"] for e in unlocked] == ["dispatcher"]
    failures = await pool.fetchval(
        """SELECT count(*) FROM access_log
            WHERE action = 'signin' AND outcome = 'failure' AND username = 'dispatcher'"""
    )
    assert failures == 5  # refused attempts never reached a password check


async def test_a_lockout_ends_by_itself_as_an_event(settings: Settings) -> None:
    quick = settings.model_copy(update={"signin_lockout_s": 1, "signin_max_failures": 2})
    async with running_api(quick, background=True) as api:
        codes = [(await _sign_in(api, "handler", "nope")).status_code for _ in range(3)]
        assert codes == [401, 401, 429]

        async def ended() -> Any:
            return await api.state.pool.fetchval(
                "SELECT data FROM events WHERE type = 'auth.unlocked'"
            )

        for _ in range(200):
            if await ended():
                break
            await asyncio.sleep(0.1)
        assert (await ended()) == {"name": "handler", "reason": "lockout expired"}
        assert (await _sign_in(api, "handler")).status_code == 200


async def test_the_address_limit_is_separate_and_higher(settings: Settings) -> None:
    tight = settings.model_copy(update={"signin_address_max_failures": 8})
    async with running_api(tight) as api:
        for i in range(8):
            # A different name each time: no account reaches its own limit.
            assert (await _sign_in(api, f"name{i}", "wrong")).status_code == 401
        r = await _sign_in(api, "handler")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


async def test_lockout_holds_with_redis_down(settings: Settings) -> None:
    # Nothing listens on this port: the throttle counts from PostgreSQL's access log.
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with running_api(down) as api:
        _assert_locked_after_five(await _brute_force(api, "supervisor", 12))
        assert (await _sign_in(api, "supervisor")).status_code == 429
        assert (await _sign_in(api, "handler")).status_code == 200


async def _tokens(api: Api, username: str) -> dict[str, Any]:
    r = await _sign_in(api, username)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["access_token"] and body["refresh_token"] and body["session_id"]
    assert body["expires_in"] == api.settings.jwt_ttl_s
    return body


async def _status(api: Api, token: str, url: str = "/api/incidents/open") -> int:
    return (await api.client.get(url, headers=_bearer(token))).status_code


async def test_refresh_rotates_and_a_reused_token_ends_the_family(api: Api) -> None:
    first = await _tokens(api, "dispatcher")
    r = await api.client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["session_id"] == first["session_id"]
    assert second["refresh_token"] != first["refresh_token"]
    assert await _status(api, second["access_token"]) == 200
    # The first refresh token, copied by an attacker and used after the rotation:
    stolen = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert stolen.status_code == 401 and stolen.json()["reason"] == "session_ended"
    # ... ends the session for everyone holding any of its tokens.
    assert await _status(api, second["access_token"]) == 401
    assert await _status(api, first["access_token"]) == 401
    again = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert again.status_code == 401
    reuse = await api.state.pool.fetchval(
        "SELECT count(*) FROM access_log WHERE action = 'refresh_reuse'"
    )
    assert reuse == 1
    # Another session of the same user is untouched.
    other = await _tokens(api, "dispatcher")
    assert await _status(api, other["access_token"]) == 200


async def test_concurrent_refreshes_of_one_token_make_one_winner(api: Api) -> None:
    tok = await _tokens(api, "handler")
    answers = await asyncio.gather(
        *(
            api.client.post("/api/auth/refresh", json={"refresh_token": tok["refresh_token"]})
            for _ in range(6)
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes.count(200) == 1, codes  # the rest are reuses: the session ends
    assert codes.count(401) == 5, codes


async def test_sign_out_ends_the_session_at_once(api: Api) -> None:
    tok = await _tokens(api, "supervisor")
    assert await _status(api, tok["access_token"]) == 200
    r = await api.client.post("/api/auth/signout", headers=_bearer(tok["access_token"]))
    assert r.status_code == 200 and r.json() == {"ended": True}
    r = await api.client.get("/api/incidents/open", headers=_bearer(tok["access_token"]))
    assert r.status_code == 401 and "signed out" in r.json()["detail"]
    r = await api.client.post("/api/auth/refresh", json={"refresh_token": tok["refresh_token"]})
    assert r.status_code == 401
    rows = await api.state.pool.fetch("SELECT action, outcome FROM access_log ORDER BY id")
    assert ("signout", "ok") in [(r["action"], r["outcome"]) for r in rows]


async def test_console_cookies_are_httponly_and_need_the_csrf_echo(api: Api) -> None:
    r = await api.client.post(
        "/api/auth/token",
        data={
            "username": "dispatcher",
            "password": PASSWORDS["dispatcher"],
            "client_id": "console",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["access_token"] is None and r.json()["refresh_token"] is None
    raw = r.headers.get_list("set-cookie")
    by_name = {c.split("=", 1)[0]: c.lower() for c in raw}
    assert "httponly" in by_name["cad_access"] and "samesite=strict" in by_name["cad_access"]
    assert "httponly" in by_name["cad_refresh"] and "path=/api/auth" in by_name["cad_refresh"]
    assert "httponly" not in by_name["cad_csrf"]  # the page echoes it
    jar = api.client.cookies
    assert (await api.client.get("/api/incidents/open")).status_code == 200
    body = {"text": "cookie remark"}
    incident = await api.as_("handler", "POST", "/api/calls", json=call_body())
    url = f"/api/incidents/{incident.json()['incident']['id']}/remarks"
    # A cookie alone cannot change anything: that is what a cross-site form would send.
    refused = await api.client.post(url, json=body)
    assert refused.status_code == 403 and refused.json()["reason"] == "csrf"
    wrong_origin = await api.client.post(
        url, json=body, headers={"X-CSRF-Token": jar["cad_csrf"], "Origin": "https://evil.test"}
    )
    assert wrong_origin.status_code == 403
    ok = await api.client.post(url, json=body, headers={"X-CSRF-Token": jar["cad_csrf"]})
    assert ok.status_code == 201, ok.text
    renewed = await api.client.post("/api/auth/refresh", headers={"X-CSRF-Token": jar["cad_csrf"]})
    assert renewed.status_code == 200 and renewed.json()["access_token"] is None
    out = await api.client.post("/api/auth/signout", headers={"X-CSRF-Token": jar["cad_csrf"]})
    assert out.status_code == 200 and out.json()["ended"] is True
    api.client.cookies.clear()


async def test_password_rules(api: Api) -> None:
    cases = {
        "short1": "at least 12",
        "newperson1234": "username",
        "password123456!": "common",
        "Liverpool2026!!": "common",
        "aaaaaaaaaaaaaa": "different characters",
        "123456789012": "common",
        "abcdefghijklm": "sequence",
    }
    for password, reason in cases.items():
        r = await api.as_(
            "admin", "POST", "/api/users",
            json={"username": "newperson", "role": "call_handler", "password": password},
        )  # fmt: skip
        assert r.status_code == 422, (password, r.text)
        assert r.json()["errors"][0]["field"] == "password"
        assert reason in r.json()["errors"][0]["reason"], (password, r.json())
    assert (
        await api.state.pool.fetchval("SELECT count(*) FROM users WHERE username = 'newperson'")
    ) == 0


async def test_admin_adds_a_user_who_must_choose_a_password(api: Api) -> None:
    r = await api.as_(
        "admin", "POST", "/api/users",
        json={"username": "pc.jones", "role": "unit", "password": "temporary words here",
              "unit_callsign": "CW12"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["must_change_password"] and user["unit_callsign"] == "CW12"
    dup = await api.as_(
        "admin", "POST", "/api/users",
        json={"username": "PC.Jones", "role": "call_handler", "password": "temporary words here"},
    )  # fmt: skip
    assert dup.status_code == 409
    refused = await _sign_in(api, "pc.jones", "temporary words here")
    assert refused.status_code == 403
    assert refused.json()["reason"] == "password_change_required"
    weak = await api.client.post(
        "/api/auth/password",
        json={"username": "pc.jones", "current_password": "temporary words here",
              "new_password": "pc.jones"},
    )  # fmt: skip
    assert weak.status_code == 422 and weak.json()["errors"][0]["field"] == "new_password"
    changed = await api.client.post(
        "/api/auth/password",
        json={"username": "pc.jones", "current_password": "temporary words here",
              "new_password": GOOD},
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    me = await api.client.get("/api/units/me", headers=_bearer(changed.json()["access_token"]))
    assert me.status_code == 200 and me.json()["callsign"] == "CW12"
    assert (await _sign_in(api, "pc.jones", GOOD)).status_code == 200


async def test_admin_changes_end_sessions_and_apply_at_once(api: Api) -> None:
    tok = await _tokens(api, "supervisor")
    assert await _status(api, tok["access_token"], "/api/stats") == 200
    r = await api.as_("admin", "PATCH", "/api/users/supervisor", json={"role": "dispatcher"})
    assert r.status_code == 200 and r.json()["role"] == "dispatcher", r.text
    old = await api.client.get("/api/stats", headers=_bearer(tok["access_token"]))
    assert old.status_code == 401 and "role changed" in old.json()["detail"]
    new = await _tokens(api, "supervisor")
    assert new["role"] == "dispatcher"
    assert await _status(api, new["access_token"], "/api/stats") == 403

    r = await api.as_("admin", "PATCH", "/api/users/supervisor", json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert await _status(api, new["access_token"]) == 401
    assert (await _sign_in(api, "supervisor")).status_code == 401
    r = await api.client.post("/api/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert r.status_code == 401
    r = await api.as_("admin", "PATCH", "/api/users/supervisor", json={"disabled": False})
    assert r.status_code == 200 and r.json()["disabled"] is False
    assert (await _sign_in(api, "supervisor")).status_code == 200

    reset = await api.as_("admin", "PATCH", "/api/users/handler", json={"password": GOOD})
    assert reset.status_code == 200 and reset.json()["must_change_password"] is True
    assert (await _sign_in(api, "handler", GOOD)).status_code == 403
    ended = await api.as_("admin", "POST", "/api/users/dispatcher/end-sessions")
    assert ended.status_code == 200
    listing = await api.as_("admin", "GET", "/api/users")
    assert {u["username"] for u in listing.json()["users"]} >= {"admin", "dispatcher", "unit"}

    # An administrator cannot lock themselves out; a bad change changes nothing.
    me = await api.as_("admin", "PATCH", "/api/users/admin", json={"disabled": True})
    assert me.status_code == 409
    bad = await api.as_("admin", "PATCH", "/api/users/handler", json={"role": "unit"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "unit_callsign"
    assert (await api.as_("admin", "GET", "/api/users/handler")).json()["role"] == "call_handler"
    assert (await api.as_("admin", "PATCH", "/api/users/nobody", json={})).status_code == 404


async def test_demo_accounts_are_refused_in_production(settings: Settings) -> None:
    prod = settings.model_copy(update={"env": "production", "jwt_secret": "p" * 40})
    async with running_api(prod) as api:
        r = await _sign_in(api, "handler")
        assert r.status_code == 403 and r.json()["reason"] == "demo_account"
        made = await api.state.pool.execute(
            "UPDATE users SET demo = false WHERE username = 'admin'"
        )
        assert made == "UPDATE 1"
        assert (await _sign_in(api, "admin")).status_code == 200


async def test_access_log_records_and_filters(api: Api) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    await _sign_in(api, "handler", "wrong one")
    await _tokens(api, "handler")
    incident = await api.as_("handler", "POST", "/api/calls", json=call_body())
    incident_id = incident.json()["incident"]["id"]
    assert (
        await api.as_("supervisor", "GET", f"/api/incidents/{incident_id}/export")
    ).status_code == 200
    await api.as_("admin", "POST", "/api/users/handler/end-sessions")

    r = await api.as_(
        "supervisor", "GET", "/api/access-log",
        params={"username": "handler", "since": start.isoformat()},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    kinds = [(e["action"], e["outcome"]) for e in entries]
    assert ("signin", "failure") in kinds and ("signin", "ok") in kinds
    assert ("user.end_sessions", "ok") in kinds  # handler as the account acted on
    failure = next(e for e in entries if e["outcome"] == "failure")
    assert failure["address"] and failure["user_agent"]
    reads = await api.as_("supervisor", "GET", "/api/access-log", params={"action": "export.read"})
    read = reads.json()["entries"][0]
    assert read["username"] == "supervisor" and read["target"] == str(incident_id)
    later = await api.as_(
        "supervisor", "GET", "/api/access-log",
        params={"username": "handler", "since": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
    )  # fmt: skip
    assert later.json()["entries"] == []
    naive = await api.as_(
        "supervisor", "GET", "/api/access-log", params={"since": "2026-01-01T00:00:00"}
    )
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "since"
    page = await api.as_("supervisor", "GET", "/api/access-log", params={"limit": 2})
    older = await api.as_(
        "supervisor", "GET", "/api/access-log",
        params={"limit": 2, "before_id": page.json()["next_before_id"]},
    )  # fmt: skip
    assert {e["id"] for e in page.json()["entries"]}.isdisjoint(
        {e["id"] for e in older.json()["entries"]}
    )


async def test_account_events_are_for_supervisors_only(api: Api) -> None:
    await _brute_force(api, "nobody", 5)
    as_dispatcher = await api.as_("dispatcher", "GET", "/api/events")
    as_supervisor = await api.as_("supervisor", "GET", "/api/events")
    assert not [e for e in as_dispatcher.json()["events"] if e["type"].startswith("auth.")]
    assert [e for e in as_supervisor.json()["events"] if e["type"] == "auth.locked"]
    assert as_dispatcher.json()["next_since"] == as_supervisor.json()["next_since"]


@pytest.mark.parametrize("field", ["username", "password"])
async def test_sign_in_with_a_missing_field_is_a_422(api: Api, field: str) -> None:
    data = {"username": "handler", "password": "handler-999"}
    del data[field]
    r = await api.client.post("/api/auth/token", data=data)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == field


async def test_a_console_sign_in_from_another_site_is_refused(api: Api) -> None:
    # Login CSRF: a form elsewhere must not put someone else's session in this browser.
    data = {"username": "handler", "password": PASSWORDS["handler"], "client_id": "console"}
    r = await api.client.post("/api/auth/token", data=data, headers={"Origin": "https://evil.test"})
    assert r.status_code == 403 and r.json()["reason"] == "csrf"
    assert "set-cookie" not in r.headers
    ok = await api.client.post("/api/auth/token", data=data, headers={"Origin": "http://test"})
    assert ok.status_code == 200 and "cad_access" in ok.headers.get("set-cookie", "")
    api.client.cookies.clear()
