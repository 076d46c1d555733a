"""Idempotency-Key: a retried call returns the first answer and creates nothing."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.conftest import Api, Server, call_body, login
from tests.intake._support import counts, db, error_fields, post_call


async def test_retry_replays_first_body(api: Api, db_url: str) -> None:
    key = str(uuid.uuid4())
    body = call_body("VIOLENCE", description="retry me")
    first = await post_call(api, body, key=key)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replay" not in first.headers
    after_first = await counts(db_url)
    second = await post_call(api, body, key=key)
    assert second.status_code == 201, second.text
    assert second.headers["Idempotent-Replay"] == "true"
    assert second.json()["incident"]["id"] == first.json()["incident"]["id"]
    assert second.content == first.content
    assert await counts(db_url) == after_first


async def test_same_key_different_body_is_422(api: Api, db_url: str) -> None:
    key = str(uuid.uuid4())
    assert (await post_call(api, call_body(description="one"), key=key)).status_code == 201
    before = await counts(db_url)
    r = await post_call(api, call_body(description="two"), key=key)
    assert r.status_code == 422, r.text
    assert "Idempotency-Key" in error_fields(r)
    assert await counts(db_url) == before


async def test_bad_key_is_422(api: Api, db_url: str) -> None:
    before = await counts(db_url)
    r = await post_call(api, call_body(), key="x" * 201)
    assert r.status_code == 422 and "Idempotency-Key" in error_fields(r)
    assert await counts(db_url) == before


async def test_keys_are_per_user(api: Api, db_url: str) -> None:
    key = "shared-key-1"
    a = await post_call(api, call_body(description="handler's"), user="handler", key=key)
    # Another user's key space: a different body is not a clash, and it is a new call.
    b = await post_call(api, call_body(description="supervisor's"), user="supervisor", key=key)
    assert a.status_code == b.status_code == 201, (a.text, b.text)
    assert "Idempotent-Replay" not in b.headers
    assert a.json()["incident"]["id"] != b.json()["incident"]["id"]
    async with db(db_url) as conn:
        assert await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", key) == 2


async def _assert_exactly_one(
    db_url: str, answers: list[httpx.Response], before: dict[str, int]
) -> None:
    assert [r.status_code for r in answers] == [201] * len(answers), {
        r.status_code: r.text for r in answers
    }
    bodies = {r.content for r in answers}
    assert len(bodies) == 1, "every retry must get the first answer, byte for byte"
    replays = [r.headers.get("Idempotent-Replay") for r in answers]
    assert replays.count(None) == 1 and replays.count("true") == len(answers) - 1
    after = await counts(db_url)
    assert after["incidents"] == before["incidents"] + 1
    assert after["calls"] == before["calls"] + 1
    assert after["idempotency_keys"] == before["idempotency_keys"] + 1
    incident_id = answers[0].json()["incident"]["id"]
    async with db(db_url) as conn:
        created = await conn.fetchval(
            "SELECT count(*) FROM events WHERE type = 'incident.created' AND incident_id = $1",
            incident_id,
        )
        total_created = await conn.fetchval(
            "SELECT count(*) FROM events WHERE type = 'incident.created'"
        )
    assert created == 1 and total_created == 1


async def test_fifty_parallel_retries_in_process(api: Api, db_url: str) -> None:
    key = str(uuid.uuid4())
    body = call_body("KNIFE", description="parallel retries")
    await api.headers("handler")
    before = await counts(db_url)
    answers = await asyncio.gather(*(post_call(api, body, key=key) for _ in range(50)))
    await _assert_exactly_one(db_url, list(answers), before)


async def test_fifty_parallel_retries_over_sockets(server: Server, db_url: str) -> None:
    key = str(uuid.uuid4())
    body = call_body("KNIFE", description="parallel retries over the wire")
    token = await login(server.url, "handler")
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    before = await counts(db_url)
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.post("/api/calls", json=body, headers=headers) for _ in range(50))
        )
    await _assert_exactly_one(db_url, list(answers), before)
