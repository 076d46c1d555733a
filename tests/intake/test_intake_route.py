"""POST /api/calls takes the common request past FastAPI's routing and dependency
solving (cad/calls/router.py, IntakeShortcut), and leaves every other one to the route,
which answers it as before; every middleware sees both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fastapi.routing
import httpx
import pytest

from tests.conftest import Api, call_body, make_settings, running_api
from tests.intake._support import counts, error_fields, post_call


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The methods of the calls to /api/calls FastAPI's handler solved dependencies for
    (the token requests the test client makes are not counted)."""
    seen: list[str] = []
    real = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        request = kwargs["request"]
        if request.url.path == "/api/calls":
            seen.append(request.method)
        return await real(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    yield seen


async def test_a_call_with_a_bearer_token_and_a_valid_body_skips_dependency_solving(
    api: Api, solved: list[str], db_url: str
) -> None:
    r = await post_call(api, call_body(), key="route-1")
    assert r.status_code == 201, r.text
    assert solved == []
    # The middleware saw it: request id, security headers, the metrics under the route.
    assert len(r.headers["x-request-id"]) == 32
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    metrics = (await api.client.get("/metrics")).text
    assert 'cad_http_requests_total{method="POST",route="/api/calls",status="201"}' in metrics
    again = await post_call(api, call_body(), key="route-1")
    assert again.status_code == 201 and again.json() == r.json()
    assert solved == []
    # A link to the incident goes the same way.
    link = await post_call(api, {**call_body(), "link_to": r.json()["incident"]["id"]})
    assert link.status_code == 201, link.text
    assert solved == []
    assert (await counts(db_url))["calls"] == 2


async def test_anything_else_is_answered_by_fastapis_handler_as_before(
    api: Api, solved: list[str], db_url: str
) -> None:
    before = await counts(db_url)
    bad = await post_call(api, call_body(location={"lat": 91, "lng": 0}))
    assert bad.status_code == 422
    assert "less than or equal" in error_fields(bad)["location.lat"]
    not_json = await api.as_(
        "handler", "POST", "/api/calls", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422 and not_json.json()["code"] == "invalid"
    as_text = await api.as_(
        "handler", "POST", "/api/calls", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert as_text.status_code == 422
    wrong_role = await post_call(api, call_body(), user="dispatcher")
    assert wrong_role.status_code == 403 and "may not do this" in wrong_role.json()["detail"]
    no_token = await api.client.post("/api/calls", json=call_body())
    assert no_token.status_code == 401
    bad_token = await api.client.post(
        "/api/calls", json=call_body(), headers={"Authorization": "Bearer not-a-token"}
    )
    assert bad_token.status_code == 401 and bad_token.json()["detail"] == "invalid token"
    # Each went to FastAPI's handler; the unparseable body stopped there before any
    # dependency was solved, the other five solved theirs.
    assert solved == ["POST"] * 5
    assert await counts(db_url) == before


async def test_the_calls_it_takes_still_pass_cors_and_trusted_hosts(
    db_url: str, redis_prefix: str
) -> None:
    """The short way is inside every middleware the settings add: a call from a host the
    room does not serve is refused, and a desk on an allowed origin gets its CORS
    header, as on any route."""
    settings = make_settings(
        db_url, redis_prefix, cors_origins="http://desk.example", allowed_hosts="test"
    )
    async with running_api(settings) as api:
        origin = {"Origin": "http://desk.example"}
        ok = await api.as_("handler", "POST", "/api/calls", json=call_body(), headers=origin)
        assert ok.status_code == 201, ok.text
        assert ok.headers["access-control-allow-origin"] == "http://desk.example"
        # Not through the test client, whose contract check knows the routes' answers
        # (the trusted-host middleware answers before any route).
        elsewhere = {"Host": "elsewhere.example", **await api.headers("handler")}
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as raw:
            refused = await raw.post("/api/calls", json=call_body(), headers=elsewhere)
        assert refused.status_code == 400, refused.text
    assert (await counts(db_url))["calls"] == 1
