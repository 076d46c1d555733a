"""POST /api/calls: the 201 body, what is committed, references, outcomes, the list."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from cad.incidents.service import local_day, ref_suffix
from tests.conftest import Api, call_body
from tests.intake._support import counts, db, error_fields, events_for, new_incident, post_call

REF_RE = re.compile(r"^CAD (\d+)/(\d{2}[A-Z]{3}\d{2})$")


async def test_happy_path_body_and_commit(api: Api, db_url: str) -> None:
    before = await counts(db_url)
    body = call_body("VIOLENCE", 51.4975, -0.1357, description="two men fighting")
    r = await post_call(api, body)
    assert r.status_code == 201, r.text
    out = r.json()
    call, incident, grading = out["call"], out["incident"], out["grading"]

    created = datetime.fromisoformat(incident["created_at"])
    # A fresh database: the first number of the London day.
    london_day = created.astimezone(ZoneInfo("Europe/London")).strftime("%d%b%y").upper()
    assert incident["ref"] == f"CAD 1/{london_day}"
    assert incident["grade"] == "I" and grading["grade"] == "I"
    assert incident["status"] == "pending"
    assert incident["area"] == "Westminster"
    assert datetime.fromisoformat(incident["target_at"]) == created + timedelta(minutes=15)
    assert grading["rule"] == "default" and "Violence" in grading["reason"]
    assert call["incident_id"] == incident["id"] and call["outcome"] == "incident_created"
    assert out["possible_duplicates"] == []

    # Acknowledged means committed: a separate connection sees all three.
    assert await counts(db_url) == {
        **before,
        "incidents": before["incidents"] + 1,
        "calls": before["calls"] + 1,
        "events": before["events"] + 1,
    }
    async with db(db_url) as conn:
        row = await conn.fetchrow("SELECT * FROM incidents WHERE id = $1", incident["id"])
        crow = await conn.fetchrow("SELECT * FROM calls WHERE id = $1", call["id"])
    assert row["ref"] == incident["ref"] and row["grade"] == "I" and row["status"] == "pending"
    assert row["description"] == "two men fighting" and row["grade_rule"] == "default"
    assert crow["incident_id"] == incident["id"] and crow["caller_phone"] == "07700 900000"
    assert crow["type_code"] == "VIOLENCE" and crow["location_source"] == "aml"
    (event,) = await events_for(db_url, incident["id"])
    assert event["type"] == "incident.created" and event["actor"] == "call_handler:handler"
    assert event["data"]["ref"] == incident["ref"]
    assert event["data"]["grade"] == "I" and event["data"]["rule"] == "default"
    assert event["data"]["call_id"] == call["id"]
    assert event["data"]["area_code"] == incident["area_code"] == "E09000033"


def test_ref_day_is_the_london_day() -> None:
    # 23:30 UTC in British Summer Time is already the next day in London.
    assert local_day(datetime(2026, 6, 30, 23, 30, tzinfo=UTC)) == date(2026, 7, 1)
    assert local_day(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == date(2026, 12, 31)
    assert ref_suffix(date(2026, 7, 1)) == "01JUL26"


async def test_refs_unique_and_sequential_under_concurrency(api: Api, db_url: str) -> None:
    n = 30
    bodies = [call_body("THEFT", 51.45 + i * 0.002, -0.10) for i in range(n)]
    await api.headers("handler")  # one login, not thirty racing ones
    answers = await asyncio.gather(*(post_call(api, b) for b in bodies))
    assert [r.status_code for r in answers] == [201] * n, [r.text for r in answers if r.is_error]
    refs = [r.json()["incident"]["ref"] for r in answers]
    assert len(set(refs)) == n
    by_day: dict[str, set[int]] = {}
    for ref in refs:
        m = REF_RE.match(ref)
        assert m, ref
        by_day.setdefault(m[2], set()).add(int(m[1]))
    # A fresh database: each day's numbers run 1..k with no gap (a test spanning
    # midnight gets two such runs).
    for numbers in by_day.values():
        assert numbers == set(range(1, len(numbers) + 1)), sorted(numbers)
    async with db(db_url) as conn:
        stored = await conn.fetchval("SELECT count(DISTINCT ref) FROM incidents")
    assert stored == n


async def test_outcome_call_creates_no_incident(api: Api, db_url: str) -> None:
    before = await counts(db_url)
    r = await post_call(api, call_body("ADVICE", outcome="advice"))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["incident"] is None
    assert out["call"]["outcome"] == "advice" and out["call"]["incident_id"] is None
    after = await counts(db_url)
    assert after["incidents"] == before["incidents"]
    assert after["calls"] == before["calls"] + 1
    async with db(db_url) as conn:
        row = await conn.fetchrow(
            "SELECT outcome, incident_id FROM calls WHERE id = $1", out["call"]["id"]
        )
        ev = await conn.fetchrow("SELECT type, data FROM events ORDER BY seq DESC LIMIT 1")
    assert (row["outcome"], row["incident_id"]) == ("advice", None)
    assert ev["type"] == "call.closed" and ev["data"]["outcome"] == "advice"


async def test_outcome_and_link_together_is_refused(api: Api, db_url: str) -> None:
    first = await new_incident(api, call_body())
    before = await counts(db_url)
    r = await post_call(api, call_body(outcome="hoax", link_to=first["id"]))
    assert r.status_code == 422
    assert "linked" in error_fields(r)["outcome"]
    assert await counts(db_url) == before


async def test_list_filters_and_limit(api: Api) -> None:
    made = {
        "I": await new_incident(api, call_body("VIOLENCE", 51.50, -0.12)),
        "S": await new_incident(api, call_body("HATE_CRIME", 51.51, -0.13)),
        "E": await new_incident(api, call_body("BURGLARY", 51.52, -0.14)),
        "R": await new_incident(api, call_body("ADVICE", 51.53, -0.15)),
    }
    assert made["R"]["status"] == "closed"

    async def ids(query: str) -> list[int]:
        r = await api.as_("dispatcher", "GET", f"/api/incidents{query}")
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()]

    open_ids = await ids("?status=open")
    assert set(open_ids) == {made[g]["id"] for g in "ISE"}
    assert await ids("?grade=I,S") == [made["I"]["id"], made["S"]["id"]]  # I before S
    assert await ids("?status=closed") == [made["R"]["id"]]
    assert set(await ids("")) == {m["id"] for m in made.values()}
    assert len(await ids("?limit=2")) == 2
    assert await ids("?limit=1&grade=E") == [made["E"]["id"]]
    for bad in ("?limit=0", "?grade=i", "?status=bogus"):
        r = await api.as_("dispatcher", "GET", f"/api/incidents{bad}")
        assert r.status_code == 422, bad


async def test_unknown_ids_are_404(api: Api) -> None:
    missing = 987654
    for method, path, body in (
        ("GET", f"/api/incidents/{missing}", None),
        ("POST", f"/api/incidents/{missing}/grade", {"grade": "S", "reason": "more info"}),
        ("POST", f"/api/incidents/{missing}/remarks", {"text": "note"}),
        ("POST", f"/api/incidents/{missing}/close", {"result_code": "NFA"}),
        ("POST", f"/api/incidents/{missing}/reopen", {"reason": "caller rang back"}),
    ):
        r = await api.as_("dispatcher", method, path, json=body)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["code"] == "not_found"


async def test_given_call_times_are_stored(api: Api, db_url: str) -> None:
    now = datetime.now(UTC)
    received, answered = now - timedelta(seconds=40), now - timedelta(seconds=31)
    body = call_body(received_at=received.isoformat(), answered_at=answered.isoformat())
    r = await post_call(api, body)
    assert r.status_code == 201, r.text
    out = r.json()
    async with db(db_url) as conn:
        call = await conn.fetchrow(
            "SELECT received_at, answered_at FROM calls WHERE id = $1", out["call"]["id"]
        )
        inc = await conn.fetchrow(
            "SELECT call_received_at, call_answered_at FROM incidents WHERE id = $1",
            out["incident"]["id"],
        )
    assert (call["received_at"], call["answered_at"]) == (received, answered)
    assert (inc["call_received_at"], inc["call_answered_at"]) == (received, answered)


async def test_open_filter_does_not_mix_with_statuses(api: Api) -> None:
    r = await api.as_("dispatcher", "GET", "/api/incidents", params={"status": "open,closed"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "status"
