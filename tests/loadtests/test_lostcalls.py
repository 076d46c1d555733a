"""The lost-call checker catches a missing acknowledged call and a duplicate."""

from __future__ import annotations

import uuid

from loadtests import lostcalls
from tests.conftest import Api, call_body


async def _post(api: Api, key: str | None, tag: str) -> dict:
    headers = {"Idempotency-Key": key} if key else {}
    r = await api.as_(
        "handler",
        "POST",
        "/api/calls",
        json=call_body(description=f"test [lt:{tag}]"),
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_clean_run_passes_and_retries_do_not_count_twice(api: Api) -> None:
    acks = []
    for _ in range(3):
        key = uuid.uuid4().hex
        body = await _post(api, key, key)
        acks.append({"key": key, "call_id": body["call"]["id"]})
    # A retry with the same key answers the same call: acknowledged twice, one call.
    again = await _post(api, acks[0]["key"], acks[0]["key"])
    acks.append({"key": acks[0]["key"], "call_id": again["call"]["id"]})
    async with api.state.pool.acquire() as conn:
        report = await lostcalls.check(conn, acks)
    assert report.ok, report.as_dict()
    assert report.acknowledged == 4 and report.distinct_keys == 3
    assert report.tagged_calls_in_db == 3


async def test_planted_missing_call_is_caught(api: Api) -> None:
    key = uuid.uuid4().hex
    body = await _post(api, key, key)
    acks = [{"key": key, "call_id": body["call"]["id"]}, {"key": "lost-one", "call_id": 2**40}]
    async with api.state.pool.acquire() as conn:
        report = await lostcalls.check(conn, acks)
    assert not report.ok
    assert report.missing == [2**40]
    assert not report.duplicate_calls


async def test_planted_duplicate_is_caught(api: Api) -> None:
    key = uuid.uuid4().hex
    body = await _post(api, key, key)
    # A "retry" that lost its key: the same tagged call recorded a second time.
    await _post(api, None, key)
    acks = [{"key": key, "call_id": body["call"]["id"]}]
    async with api.state.pool.acquire() as conn:
        report = await lostcalls.check(conn, acks)
    assert not report.ok
    assert report.missing == []
    assert report.duplicate_calls == {key: 2}
    assert report.duplicate_incidents == {key: 2}


async def test_one_key_acknowledged_with_two_call_ids_is_caught(api: Api) -> None:
    key = uuid.uuid4().hex
    first = await _post(api, key, key)
    other = await _post(api, uuid.uuid4().hex, "other")
    acks = [
        {"key": key, "call_id": first["call"]["id"]},
        {"key": key, "call_id": other["call"]["id"]},
    ]
    async with api.state.pool.acquire() as conn:
        report = await lostcalls.check(conn, acks)
    assert report.acked_twice == [key]
    assert not report.ok
