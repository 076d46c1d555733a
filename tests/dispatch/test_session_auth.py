"""The simulator (and `cad replay`) outlive a 15-minute access token: their client renews
it with the refresh token, or signs in again when the session itself has ended."""

from __future__ import annotations

import httpx

from cad.auth.security import Principal, Role, issue_token
from dispatch.simulator import SessionAuth
from loadtests.session_auth import SessionAuth as ReplayAuth
from tests.conftest import PASSWORDS, Api


async def test_client_renews_an_expired_token_and_survives_an_ended_session(api: Api) -> None:
    for cls in (SessionAuth, ReplayAuth):
        auth = cls("simulator", PASSWORDS["simulator"])
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api.app), base_url="http://test", auth=auth
        )
        async with client:
            assert (await client.get("/api/units")).status_code == 200
            first_session = auth.access
            refresh = auth.refresh
            # An access token past its time, of the same session: renewed by refresh.
            expired = issue_token(
                Principal(6, "simulator", Role.ADMIN, None, "0" * 32),
                api.settings.jwt_secret,
                ttl_s=-60,
            )
            auth.access = expired
            assert (await client.get("/api/units")).status_code == 200
            assert auth.refresh != refresh and auth.access not in (expired, first_session)
            # The session ended (an admin signed the user out): a new sign-in.
            ended = await api.as_("admin", "POST", "/api/users/simulator/end-sessions")
            assert ended.status_code == 200 and ended.json()["ended"] >= 1
            assert (await client.get("/api/units")).status_code == 200
            sessions = await api.state.pool.fetchval(
                """SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id
                    WHERE u.username = 'simulator' AND s.ended_at IS NULL"""
            )
            assert sessions == 1
