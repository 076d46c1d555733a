"""Grading end to end: every rule in grading_rules.json is reachable through the API, and
the grade's consequences (targets, closing on creation) land on the incident."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from cad.grading.rules import DEFAULT_RULE_ID, RULES_FILE
from tests.conftest import Api, call_body
from tests.intake._support import counts, events_for, post_call

RULES: dict[str, str] = {r["id"]: r["grade"] for r in json.loads(RULES_FILE.read_text())["rules"]}

# rule id -> (incident type, risk answers) that must produce it through POST /api/calls.
# test_every_rule_has_an_api_case makes a new rule in the file fail until it gets a row.
API_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "R1-weapons-now": ("ASB", {"weapons": True, "offender_present": True}),
    "R2-violence-now": ("HATE_CRIME", {"ongoing": True}),
    "R3-injured-offender-on-scene": ("THEFT", {"injuries": True, "offender_present": True}),
    "R4-serious-rtc": ("RTC_DAMAGE", {"injuries": True}),
    "R5-crime-in-progress": ("THEFT", {"ongoing": True, "offender_present": True}),
    "R6-thrive-high": ("CONCERN_WELFARE", {"threat": "high"}),
    "R7-vulnerable-high-risk": ("MISSING_PERSON", {"vulnerable": True, "risk": "high"}),
    "S1-offender-detained": ("THEFT", {"offender_detained": True}),
    "S2-hate-crime": ("CRIMINAL_DAMAGE", {"hate_motivated": True}),
    "S3-evidence-at-risk": ("BURGLARY", {"evidence_at_risk": True}),
    "S4-vulnerable": ("LOST_PROPERTY", {"vulnerable": True}),
    "S5-thrive-medium": ("NOISE", {"threat": "medium"}),
    "E1-low-risk-nuisance": ("ASB", {"threat": "low", "harm": "low", "risk": "low"}),
    DEFAULT_RULE_ID: ("BURGLARY", {}),
}


# Rules on warning-marker categories need a marker at the place: reached through the API
# in tests/retrieval/test_markers.py (MARKER_CASES there).
MARKER_RULES = {"M1-weapons-marker", "M2-high-risk-domestic-marker"}


def test_every_rule_has_an_api_case() -> None:
    assert set(API_CASES) - {DEFAULT_RULE_ID} | MARKER_RULES == set(RULES)


async def test_each_rule_reachable_through_api_and_preview_agrees(api: Api) -> None:
    # One app for all the rules (a fresh one per rule would cost ~14 startups).
    seen: dict[str, str] = {}
    for i, (rule_id, (code, risk)) in enumerate(API_CASES.items()):
        # Spread the points out so no call is offered as another's duplicate.
        lat, lng = 51.40 + 0.01 * i, -0.20 + 0.01 * i
        location = {"lat": lat, "lng": lng}
        pr = await api.as_(
            "handler",
            "POST",
            "/api/calls/grade-preview",
            json={"incident_type": code, "risk": risk, "location": location},
        )
        assert pr.status_code == 200, pr.text
        preview = pr.json()
        r = await post_call(api, call_body(code, lat, lng, risk=risk))
        assert r.status_code == 201, (rule_id, r.text)
        out = r.json()
        assert out["grading"]["rule"] == rule_id, (rule_id, out["grading"])
        expected_grade = RULES.get(rule_id, out["incident"]["grade"])
        assert out["incident"]["grade"] == expected_grade == out["grading"]["grade"], rule_id
        assert out["incident"]["grade_rule"] == rule_id
        # What the handler was shown is what the call then got.
        assert (preview["grade"], preview["rule"], preview["reason"]) == (
            out["grading"]["grade"],
            out["grading"]["rule"],
            out["grading"]["reason"],
        ), rule_id
        assert preview["area"] == out["incident"]["area"]
        seen[rule_id] = out["incident"]["grade"]
    assert set(seen) == set(API_CASES)
    assert seen[DEFAULT_RULE_ID] == "E"  # burglary (not in progress) defaults to Extended


async def test_referred_closes_at_once(api: Api, db_url: str) -> None:
    r = await post_call(api, call_body("ADVICE"))
    assert r.status_code == 201, r.text
    incident = r.json()["incident"]
    assert incident["grade"] == "R"
    assert incident["status"] == "closed" and incident["result_code"] == "REFERRED"
    assert incident["closed_at"] is not None and incident["target_at"] is None
    types = [e["type"] for e in await events_for(db_url, incident["id"])]
    assert types == ["incident.created", "incident.closed"]
    closed = (await events_for(db_url, incident["id"]))[1]
    assert closed["data"]["result_code"] == "REFERRED" and closed["data"]["auto"] is True
    r = await api.as_("dispatcher", "GET", "/api/incidents?status=open")
    assert incident["id"] not in [i["id"] for i in r.json()]


@pytest.mark.parametrize(
    ("code", "grade", "delta"),
    [
        ("BURGLARY", "E", timedelta(hours=48)),
        ("VIOLENCE", "I", timedelta(minutes=15)),
        ("HATE_CRIME", "S", timedelta(minutes=60)),
    ],
)
async def test_target_at_by_grade(api: Api, code: str, grade: str, delta: timedelta) -> None:
    r = await post_call(api, call_body(code))
    assert r.status_code == 201, r.text
    incident = r.json()["incident"]
    assert incident["grade"] == grade
    created = datetime.fromisoformat(incident["created_at"])
    assert datetime.fromisoformat(incident["target_at"]) - created == delta


async def test_preview_writes_nothing(api: Api, db_url: str) -> None:
    before = await counts(db_url)
    r = await api.as_(
        "handler", "POST", "/api/calls/grade-preview", json={"incident_type": "VIOLENCE"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["grade"], body["target_s"], body["auto_dispatch"]) == ("I", 900, True)
    assert await counts(db_url) == before
