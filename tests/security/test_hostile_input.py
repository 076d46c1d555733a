"""Hostile and malformed input gets a 4xx that names the problem, never a 500 or a leak."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from cad.errors import TooManyRequests
from cad.ratelimit import RateLimiter
from tests.conftest import Api, call_body, make_settings, start_api

# What an error body must never contain: stack traces, SQL, file paths, driver names.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|/work/|site-packages|asyncpg|psycopg|SELECT |INSERT |UPDATE "
    r"|sqlstate|Exception\b|Error\(",
    re.IGNORECASE,
)


def assert_clean_error(r: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body: dict[str, Any] = r.json()
    assert isinstance(body.get("detail"), str) and body.get("code"), body
    assert not LEAKS.search(r.text), f"error body leaks internals: {r.text[:500]}"
    return body


def fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body.get("errors", [])}


async def test_body_over_the_limit_is_413(api: Api) -> None:
    h = await api.headers("handler")
    limit = api.settings.max_body_bytes
    big = call_body(description="x" * (limit + 10))
    body = assert_clean_error(await api.client.post("/api/calls", json=big, headers=h), 413)
    assert str(limit) in body["detail"]

    # A client that lies about (or omits) Content-Length is cut off while streaming.
    async def chunks() -> Any:
        for _ in range(limit // 1024 + 10):
            yield b" " * 1024

    r = await api.client.post(
        "/api/calls", content=chunks(), headers={**h, "Content-Type": "application/json"}
    )
    assert_clean_error(r, 413)
    r = await api.client.post(
        "/api/calls", content=b"{}", headers={**h, "Content-Length": "banana"}
    )
    assert r.status_code in (400, 413), r.text


async def test_deeply_nested_json_is_422(api: Api) -> None:
    h = {**await api.headers("handler"), "Content-Type": "application/json"}
    depth = 30_000  # deeper than Python's recursion limit, well under the size limit
    for payload in (
        b"[" * depth + b"]" * depth,
        b'{"a":' * depth + b"1" + b"}" * depth,
        b'{"caller": ' + b"[" * depth + b"]" * depth + b"}",
    ):
        assert len(payload) < api.settings.max_body_bytes
        r = await api.client.post("/api/calls", content=payload, headers=h)
        body = assert_clean_error(r, 422)
        assert fields(body) & {"body", "caller"}, body
    nested_ok_size = {"caller": {"name": {"x": {"y": [[[[1]]]]}}}}
    body = assert_clean_error(
        await api.client.post("/api/calls", json=nested_ok_size, headers=h), 422
    )
    assert "caller.name" in fields(body)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"description": "d" * 4001}, "description"),
        ({"caller": {"name": "n" * 201, "phone": "1"}}, "caller.name"),
        ({"caller": {"name": "x", "phone": "9" * 41}}, "caller.phone"),
        ({"incident_type": "T" * 65}, "incident_type"),
        ({"location": {"address": "a" * 301}}, "location.address"),
    ],
)
async def test_huge_strings_are_422_naming_the_field(
    api: Api, patch: dict[str, Any], field: str
) -> None:
    r = await api.as_("handler", "POST", "/api/calls", json=call_body(**patch))
    body = assert_clean_error(r, 422)
    assert field in fields(body), body
    assert field in body["detail"]


async def test_nul_characters_are_422_not_500(api: Api) -> None:
    # PostgreSQL text cannot hold U+0000; found by the fuzzer as a 500.
    for r in [
        await api.as_("handler", "POST", "/api/calls", json=call_body(description="a\x00b")),
        await api.as_("handler", "POST", "/api/calls", json=call_body(caller={"name": "\x00"})),
        await api.client.post("/api/auth/token", data={"username": "a\x00", "password": "x"}),
    ]:
        assert "body" in fields(assert_clean_error(r, 422))


async def test_huge_remark_and_reason_are_422(api: Api) -> None:
    created = await api.as_("handler", "POST", "/api/calls", json=call_body())
    incident_id = created.json()["incident"]["id"]
    r = await api.as_(
        "dispatcher", "POST", f"/api/incidents/{incident_id}/remarks", json={"text": "r" * 5000}
    )
    assert "text" in fields(assert_clean_error(r, 422))
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{incident_id}/grade",
        json={"grade": "S", "reason": "r" * 1001},
    )
    assert "reason" in fields(assert_clean_error(r, 422))


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"])
async def test_non_finite_coordinates_are_422(api: Api, value: bytes) -> None:
    h = {**await api.headers("handler"), "Content-Type": "application/json"}
    raw = (
        b'{"location": {"lat": ' + value + b', "lng": -0.12}, "incident_type": "VIOLENCE",'
        b' "location_source": "aml"}'
    )
    body = assert_clean_error(await api.client.post("/api/calls", content=raw, headers=h), 422)
    assert "location.lat" in fields(body)
    positions = b'[{"unit_id": 1, "lat": 51.5, "lng": ' + value + b"}]"
    r = await api.client.post(
        "/api/units/positions",
        content=positions,
        headers={**await api.headers("dispatcher"), "Content-Type": "application/json"},
    )
    assert "0.lng" in fields(assert_clean_error(r, 422))
    preview = b'{"incident_type": "VIOLENCE", "location": {"lat": 51.5, "lng": ' + value + b"}}"
    r = await api.client.post("/api/calls/grade-preview", content=preview, headers=h)
    assert "location.lng" in fields(assert_clean_error(r, 422))


SQLISH = [
    "'; DROP TABLE incidents; --",
    "Robert'); DELETE FROM events WHERE ('1'='1",
    "1 OR 1=1",
    "$1; SELECT pg_sleep(10)",
    "\\x00\\'\" UNION SELECT password_hash FROM users --",
    "<script>alert(1)</script>",
    "Zoë 💥 \u202e reversed",
]


async def test_sql_looking_text_is_stored_verbatim(api: Api) -> None:
    pool = api.state.pool
    before = await pool.fetchval("SELECT count(*) FROM incidents")
    for text in SQLISH:
        r = await api.as_(
            "handler",
            "POST",
            "/api/calls",
            json=call_body(
                description=text,
                caller={"name": text[:200], "phone": "07700 900001"},
                location={"lat": 51.5, "lng": -0.1, "address": text + " street"},
            ),
        )
        assert r.status_code == 201, r.text
        incident_id = r.json()["incident"]["id"]
        row = await pool.fetchrow(
            "SELECT description, caller_name, address FROM calls WHERE incident_id = $1",
            incident_id,
        )
        assert row["description"] == text
        assert row["caller_name"] == text
        assert row["address"] == text + " street"
        remark = await api.as_(
            "dispatcher", "POST", f"/api/incidents/{incident_id}/remarks", json={"text": text}
        )
        assert remark.status_code == 201, remark.text
        detail = (await api.as_("dispatcher", "GET", f"/api/incidents/{incident_id}")).json()
        assert detail["timeline"][-1]["data"]["text"] == text
    # Query parameters too: a filter that looks like SQL is refused by its pattern.
    r = await api.as_("dispatcher", "GET", "/api/incidents", params={"status": "open' OR '1'='1"})
    assert_clean_error(r, 422)
    assert await pool.fetchval("SELECT count(*) FROM incidents") == before + len(SQLISH)
    assert await pool.fetchval("SELECT count(*) FROM users") >= 6


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"hello, I need the police", "text/plain"),
        (b"<call><location/></call>", "application/xml"),
        (b"caller=x&incident_type=VIOLENCE", "application/x-www-form-urlencoded"),
        (b'{"incident_type": "VIOLENCE", ', "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"", "application/json"),
        (b"null", "application/json"),
        (b"[]", "application/json"),
        (b'"a string"', "application/json"),
        (b'{"location": {"lat": 51.5, "lng": 0}, "incident_type": "VIOLENCE"}', "image/png"),
    ],
)
async def test_non_json_bodies_and_wrong_content_types_are_4xx(
    api: Api, content: bytes, content_type: str
) -> None:
    h = {**await api.headers("handler"), "Content-Type": content_type}
    r = await api.client.post("/api/calls", content=content, headers=h)
    assert_clean_error(r, (400, 415, 422))
    r = await api.client.post("/api/units/positions", content=content, headers=h)
    assert_clean_error(r, (400, 403, 415, 422))


@pytest.mark.parametrize(
    "raw_id", ["99999999999999999999", "9223372036854775808", "-1", "0", "1e3", "abc", "1.5"]
)
async def test_path_ids_that_do_not_fit_are_422_or_404(api: Api, raw_id: str) -> None:
    h = await api.headers("admin")
    for method, url, body in [
        ("GET", f"/api/incidents/{raw_id}", None),
        ("GET", f"/api/incidents/{raw_id}/export", None),
        ("GET", f"/api/incidents/{raw_id}/recommendations", None),
        ("POST", f"/api/incidents/{raw_id}/assignments", {"unit_id": 1}),
        ("POST", f"/api/incidents/{raw_id}/close", {"result_code": "NFA"}),
        ("POST", f"/api/units/{raw_id}/status", {"status": "available"}),
    ]:
        r = await api.client.request(method, url, json=body, headers=h)
        assert_clean_error(r, (404, 422))
    r = await api.client.get(f"/api/events?since={raw_id}", headers=h)
    assert r.status_code in (200, 422), r.text
    r = await api.client.post("/api/incidents/1/assignments", json={"unit_id": 2**70}, headers=h)
    assert_clean_error(r, 422)


async def test_bad_idempotency_keys_and_headers(api: Api) -> None:
    h = await api.headers("handler")
    for key in ("k" * 201, "tab\there"):
        r = await api.client.post(
            "/api/calls", json=call_body(), headers={**h, "Idempotency-Key": key}
        )
        assert "Idempotency-Key" in fields(assert_clean_error(r, 422))
    key = str(uuid.uuid4())
    first = await api.client.post(
        "/api/calls", json=call_body(), headers={**h, "Idempotency-Key": key}
    )
    assert first.status_code == 201
    other = await api.client.post(
        "/api/calls", json=call_body(description="other"), headers={**h, "Idempotency-Key": key}
    )
    assert "Idempotency-Key" in fields(assert_clean_error(other, 422))
    huge_token = {"Authorization": "Bearer " + "a" * 8000}
    assert_clean_error(await api.client.get("/api/incidents", headers=huge_token), 401)
    r = await api.client.post(
        "/api/auth/token", data={"username": "admin' --", "password": "x" * 100_000}
    )
    assert_clean_error(r, (401, 413, 422))


async def test_unknown_routes_and_methods_do_not_leak(api: Api) -> None:
    h = await api.headers("admin")
    for method, url in [
        ("GET", "/api/../../etc/passwd"),
        ("GET", "/api/incidents/1/../../no-such-route"),
        ("DELETE", "/api/incidents/1"),
        ("PUT", "/api/calls"),
        ("GET", "/console/../cad/config.py"),
        ("GET", "/console/%2e%2e/pyproject.toml"),
    ]:
        r = await api.client.request(method, url, headers=h)
        assert r.status_code in (400, 401, 404, 405), (url, r.status_code)
        assert not LEAKS.search(r.text) and "DEV_JWT_SECRET" not in r.text, (url, r.text[:300])


async def test_intake_rate_limit_answers_429_with_retry_after(
    db_url: str, redis_prefix: str
) -> None:
    assert make_settings(db_url, redis_prefix).rate_limit_per_min >= 1000  # load tests pass
    settings = make_settings(db_url, redis_prefix, rate_limit_per_min=3)
    app, lifespan, client = await start_api(settings, background=False)
    try:
        api = Api(app, client, settings, {})
        pool = app.state.cad.pool
        before = await pool.fetchval("SELECT count(*) FROM calls")
        accepted = 0
        # Windows are per clock minute: the limit may reset once while we are at it.
        for _ in range(7):
            r = await api.as_("handler", "POST", "/api/calls", json=call_body())
            if r.status_code != 201:
                break
            accepted += 1
        assert 3 <= accepted <= 6, accepted
        body = assert_clean_error(r, 429)
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert body["code"] == "rate_limited"
        # The limit is per user: another handler is not throttled by the first.
        r = await api.as_("supervisor", "POST", "/api/calls", json=call_body())
        assert r.status_code == 201, r.text
        # The refused call was not recorded.
        assert await pool.fetchval("SELECT count(*) FROM calls") == before + accepted + 1
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_concurrent_limit_checks_share_a_round_trip_and_count_exactly(
    redis: Redis, redis_prefix: str
) -> None:
    """A worker's concurrent checks of one user are one INCRBY, and each still gets its
    own place in the count: with 25 at once under a limit of 10, exactly 10 pass."""

    async def incrbys() -> int:
        stats = await redis.info("commandstats")
        return int(stats.get("cmdstat_incrby", {}).get("calls", 0))

    limiter = RateLimiter(redis, redis_prefix, per_minute=10)
    before = await incrbys()
    got = await asyncio.gather(
        *(limiter.check(7, "calls") for _ in range(25)), return_exceptions=True
    )
    refused = [g for g in got if isinstance(g, TooManyRequests)]
    assert got.count(None) == 10 and len(refused) == 15, got
    assert await incrbys() - before == 1
    # Counted in Redis as 25 checks, where another worker's checks meet them.
    (key,) = [k async for k in redis.scan_iter(f"{redis_prefix}:rl:calls:7:*")]
    assert int(await redis.get(key)) == 25
    assert 0 < await redis.ttl(key) <= 120  # the window's key goes when the window has
    # One at a time they still count one each.
    other = RateLimiter(redis, redis_prefix, per_minute=27)
    await other.check(7, "calls")
    await other.check(7, "calls")
    with pytest.raises(TooManyRequests):
        await other.check(7, "calls")


async def test_a_runaway_client_is_counted_ahead_and_a_person_never_is(
    redis: Redis, redis_prefix: str
) -> None:
    """Ten checks a second or more on a worker, and each INCRBY counts about a tenth of a
    second's worth ahead (at most a hundredth of the limit), which the next checks take
    without asking Redis; under that pace every check is its own count."""

    async def scripts() -> int:
        stats = await redis.info("commandstats")
        return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("eval", "evalsha"))

    async def count(user: int) -> int:
        (key,) = [k async for k in redis.scan_iter(f"{redis_prefix}:rl:calls:{user}:*")]
        return int(await redis.get(key))

    now = [600_000.0]  # the start of a minute window
    limiter = RateLimiter(redis, redis_prefix, per_minute=5_000, clock=lambda: now[0])
    # A person's pace: nine in a second, then nine the next, one at a time.
    before = await scripts()
    for i in range(18):
        now[0] = 600_000.0 + i / 9
        await limiter.check(1, "calls")
    assert await scripts() - before == 18
    assert await count(1) == 18
    # A script's: 300 checks in one second, then the next second's.
    for i in range(300):
        now[0] = 600_010.0 + i / 300
        await limiter.check(2, "calls")
    before = await scripts()
    for i in range(300):
        now[0] = 600_011.0 + i / 300
        await limiter.check(2, "calls")
    # 30 counted ahead each time (300 ÷ 10; the cap, 50, is not reached): one INCRBY of
    # 31 per 31 checks, where there were 300.
    assert await scripts() - before == 10
    assert await count(2) == 600 + 10 * 31 - 300
    # Near the limit the places held ahead are refused like any count past it, and never
    # more than the limit pass.
    tight = RateLimiter(redis, redis_prefix, per_minute=1_000, clock=lambda: now[0])
    passed = 0
    for i in range(1_500):
        now[0] = 600_020.0 + i / 100  # 100 a second for 15 s, one window
        try:
            await tight.check(3, "calls")
            passed += 1
        except TooManyRequests:
            pass
    assert 1_000 - 10 <= passed <= 1_000, passed
