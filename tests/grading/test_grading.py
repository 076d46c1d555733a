import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cad.grading import (
    CAPABILITIES,
    DEFAULT_RULE_ID,
    GradingDataError,
    Rule,
    duplicate_score,
    grade_call,
    load_catalogue,
    load_rules,
    load_scheme,
    parse_rules,
    read_catalogue,
    read_rules,
    related_types,
    target_at,
)
from cad.grading.rules import CATALOGUE_FILE, LEVEL_RISK_FIELDS, LEVELS, RULES_FILE

CAT = load_catalogue()
SCHEME = load_scheme()

# (incident type, risk answers, expected grade, expected rule id). Every rule in
# grading_rules.json must appear here: test_every_rule_has_a_case enforces it.
CASES: list[tuple[str, dict[str, object], str, str]] = [
    ("ASB", {"weapons": True, "offender_present": True}, "I", "R1-weapons-now"),
    ("THEFT", {"weapons": True}, "E", DEFAULT_RULE_ID),
    ("SEXUAL_OFFENCE", {"ongoing": True}, "I", "R2-violence-now"),
    ("HATE_CRIME", {"ongoing": True}, "I", "R2-violence-now"),
    ("THEFT", {"ongoing": True}, "E", DEFAULT_RULE_ID),
    ("THEFT", {"injuries": True, "offender_present": True}, "I", "R3-injured-offender-on-scene"),
    ("RTC_DAMAGE", {"injuries": True}, "I", "R4-serious-rtc"),
    ("RTC_DAMAGE", {}, "S", DEFAULT_RULE_ID),
    ("THEFT", {"ongoing": True, "offender_present": True}, "I", "R5-crime-in-progress"),
    ("CONCERN_WELFARE", {"threat": "high"}, "I", "R6-thrive-high"),
    ("NOISE", {"harm": "HIGH"}, "I", "R6-thrive-high"),
    ("MISSING_PERSON", {"vulnerable": True, "risk": "high"}, "I", "R7-vulnerable-high-risk"),
    ("THEFT", {"offender_detained": True}, "S", "S1-offender-detained"),
    ("ROBBERY", {"offender_detained": True}, "I", DEFAULT_RULE_ID),
    ("CRIMINAL_DAMAGE", {"hate_motivated": True}, "S", "S2-hate-crime"),
    ("HATE_CRIME", {}, "S", "S2-hate-crime"),
    ("BURGLARY", {"evidence_at_risk": True}, "S", "S3-evidence-at-risk"),
    ("LOST_PROPERTY", {"vulnerable": True}, "S", "S4-vulnerable"),
    ("NOISE", {"threat": "medium"}, "S", "S5-thrive-medium"),
    ("DRUGS", {"risk": "high"}, "S", "S5-thrive-medium"),
    ("ASB", {"threat": "low", "harm": "low", "risk": "low"}, "E", "E1-low-risk-nuisance"),
    ("ASB", {"threat": "low", "harm": "low"}, "S", DEFAULT_RULE_ID),
    (
        "ASB",
        {"threat": "low", "harm": "low", "risk": "low", "vulnerable": True},
        "S",
        "S4-vulnerable",
    ),
    ("BURGLARY_IN_PROGRESS", {"colour_of_car": "red", "weapons": "yes"}, "I", DEFAULT_RULE_ID),
]


# (type, risk, marker categories matching the call, grade, rule): rules on markers.
MARKER_CASES: list[tuple[str, dict[str, object], dict[str, str], str, str]] = [
    ("ASB", {}, {"firearms": "Firearms"}, "I", "M1-weapons-marker"),
    ("PUBLIC_ORDER", {}, {"weapons": "Weapons"}, "I", "M1-weapons-marker"),
    ("THEFT", {}, {"firearms": "Firearms"}, "E", DEFAULT_RULE_ID),  # not violence
    (
        "NOISE",
        {},
        {"high_risk_domestic": "High-risk domestic abuse"},
        "S",
        "M2-high-risk-domestic-marker",
    ),
    ("NOISE", {}, {"dangerous_dog": "Dangerous dog"}, "R", DEFAULT_RULE_ID),
    ("NOISE", {}, {}, "R", DEFAULT_RULE_ID),
]


@pytest.mark.parametrize(("code", "risk", "markers", "grade", "rule_id"), MARKER_CASES)
def test_marker_rules(
    code: str, risk: dict[str, object], markers: dict[str, str], grade: str, rule_id: str
) -> None:
    decision = grade_call(CAT[code], risk, markers=markers)
    assert (decision.grade, decision.rule_id) == (grade, rule_id)
    if rule_id != DEFAULT_RULE_ID:
        assert decision.reason.endswith(f"(marker: {', '.join(markers.values())})")


def test_marker_rule_names_only_the_markers_it_tests() -> None:
    d = grade_call(
        CAT["ASB"], {}, markers={"firearms": "Firearms", "dangerous_dog": "Dangerous dog"}
    )
    assert d.rule_id == "M1-weapons-marker"
    assert d.reason.endswith("(marker: Firearms)")


def test_rules_refuse_an_unknown_marker_category() -> None:
    raw = {
        "rules": [
            {"id": "X", "description": "x", "grade": "I", "when": {"marker_in": ["unicorns"]}}
        ]
    }
    with pytest.raises(GradingDataError, match="unknown marker category 'unicorns'"):
        parse_rules(raw, CAT, SCHEME, marker_categories={"firearms"})


@pytest.mark.parametrize(("code", "risk", "grade", "rule_id"), CASES)
def test_case_table(code: str, risk: dict[str, object], grade: str, rule_id: str) -> None:
    decision = grade_call(CAT[code], risk)
    assert (decision.grade, decision.rule_id) == (grade, rule_id)


def test_every_rule_has_a_case() -> None:
    covered = {rule_id for *_, rule_id in CASES} | {rule_id for *_, rule_id in MARKER_CASES}
    missing = [r.id for r in load_rules() if r.id not in covered]
    assert not missing, f"rules without a test case in CASES: {missing}"


def test_reason_names_rule_or_default() -> None:
    d = grade_call(CAT["ASB"], {"weapons": True, "offender_present": True})
    assert d.reason == (
        "Rule R1-weapons-now: Weapon reported and offender on scene: danger to life"
    )
    d = grade_call(CAT["BURGLARY_IN_PROGRESS"], {})
    assert d.reason == "Default grade for Burglary in progress"


@pytest.mark.parametrize("code", sorted(CAT))
def test_no_answers_gives_default_grade(code: str) -> None:
    decision = grade_call(CAT[code], {})
    assert decision.grade == CAT[code].default_grade


@pytest.mark.parametrize(
    ("code", "grade"),
    [("FIREARMS", "I"), ("RTC_INJURY", "I"), ("CONCERN_WELFARE", "S"), ("BURGLARY", "E")]
    + [("ADVICE", "R"), ("LOST_PROPERTY", "R")],
)
def test_known_defaults(code: str, grade: str) -> None:
    assert CAT[code].default_grade == grade


_answers = st.fixed_dictionaries(
    {},
    optional={
        **{f: st.booleans() for f in ("weapons", "injuries", "offender_present", "ongoing")},
        **{f: st.booleans() for f in ("vulnerable", "offender_detained", "evidence_at_risk")},
        "hate_motivated": st.booleans(),
        **{f: st.sampled_from(sorted(LEVELS)) for f in LEVEL_RISK_FIELDS},
    },
)


@given(_answers)
def test_immediate_types_never_downgraded(risk: dict[str, object]) -> None:
    for t in CAT.values():
        if t.default_grade == "I":
            assert grade_call(t, risk).grade == "I", (t.code, risk)


def test_upgrade_only_flag_is_what_protects() -> None:
    when = {"risk.offender_detained": True}
    guarded = Rule("X1", "detained", "S", when, upgrade_only=True)
    unguarded = Rule("X1", "detained", "S", when, upgrade_only=False)
    risk = {"offender_detained": True}
    assert grade_call(CAT["FIREARMS"], risk, [guarded]).grade == "I"
    assert grade_call(CAT["FIREARMS"], risk, [unguarded]).grade == "S"


def test_all_any_not_conditions() -> None:
    rule = Rule(
        "X2",
        "combined",
        "I",
        {
            "all": [{"any": [{"risk.injuries": True}, {"type_in": ["NOISE"]}]}],
            "not": {"risk.threat": "low"},
        },
    )
    assert grade_call(CAT["NOISE"], {}, [rule]).rule_id == "X2"
    assert grade_call(CAT["NOISE"], {"threat": "low"}, [rule]).rule_id == DEFAULT_RULE_ID
    assert grade_call(CAT["THEFT"], {}, [rule]).rule_id == DEFAULT_RULE_ID


# ---------------------------------------------------------------- data validation


def _rules_with(tmp_path: Path, bad_rule: dict[str, object]) -> Path:
    data = json.loads(RULES_FILE.read_text())
    data["rules"].append(bad_rule)
    path = tmp_path / "my_rules.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"grade": "X", "when": {}}, ["'grade'", "'X'"]),
        ({"grade": "I"}, ["'when'", "missing"]),
        ({"grade": "I", "when": {"risk.weaponz": True}}, ["when.risk.weaponz"]),
        ({"grade": "I", "when": {"risk.weapons": "yes"}}, ["when.risk.weapons"]),
        ({"grade": "I", "when": {"risk.threat": "severe"}}, ["when.risk.threat"]),
        ({"grade": "I", "when": {"any": [{"type_in": ["NOPE"]}]}}, ["when.any[0].type_in"]),
        ({"grade": "I", "when": {"colour": "red"}}, ["when.colour"]),
        ({"grade": "I", "when": {}, "upgrade_only": "no"}, ["upgrade_only"]),
    ],
)
def test_bad_rule_message_names_file_rule_and_key(
    tmp_path: Path, rule: dict[str, object], words: list[str]
) -> None:
    path = _rules_with(tmp_path, {"id": "Z9-bad", "description": "bad", **rule})
    with pytest.raises(GradingDataError) as exc:
        read_rules(path)
    message = str(exc.value)
    for word in ["my_rules.json", "'Z9-bad'", *words]:
        assert word in message


def test_duplicate_rule_id_rejected(tmp_path: Path) -> None:
    path = _rules_with(
        tmp_path, {"id": "R1-weapons-now", "description": "again", "grade": "I", "when": {}}
    )
    with pytest.raises(GradingDataError, match="R1-weapons-now.*'id'"):
        read_rules(path)


def test_invalid_json_names_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(GradingDataError, match="broken.json"):
        read_rules(path)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"response_plan": [{"capability": "helicopter", "count": 1}]}, ["capability"]),
        ({"response_plan": [{"capability": "response", "count": 0}]}, ["count"]),
        ({"default_grade": "Q"}, ["default_grade"]),
        ({"related": ["NOPE"]}, ["related", "NOPE"]),
        ({"on_scene_limit_min": True}, ["on_scene_limit_min"]),
    ],
)
def test_bad_catalogue_message(tmp_path: Path, change: dict[str, object], words: list[str]) -> None:
    data = json.loads(CATALOGUE_FILE.read_text())
    for item in data["incident_types"]:
        if item["code"] == "FIREARMS":
            item.update(change)
    path = tmp_path / "types.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GradingDataError) as exc:
        read_catalogue(path)
    for word in ["types.json", "'FIREARMS'", *words]:
        assert word in str(exc.value)


def test_catalogue_shape() -> None:
    assert len(CAT) >= 25
    for t in CAT.values():
        assert all(p.capability in CAPABILITIES and p.count > 0 for p in t.response_plan)
        assert (not t.response_plan) == SCHEME[t.default_grade].closes_on_creation
    assert {p.capability for p in CAT["FIREARMS"].response_plan} >= {"armed"}


# ---------------------------------------------------------------- targets

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("grade", "delta"),
    [
        ("I", timedelta(minutes=15)),
        ("S", timedelta(hours=1)),
        ("E", timedelta(hours=48)),
        ("R", None),
    ],
)
def test_target_at(grade: str, delta: timedelta | None) -> None:
    assert target_at(SCHEME[grade], T0) == (None if delta is None else T0 + delta)


def test_target_at_normalises_to_utc_and_rejects_naive() -> None:
    bst = datetime(2024, 7, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    result = target_at(SCHEME["I"], bst)
    assert result == datetime(2024, 7, 1, 12, 15, tzinfo=UTC)
    assert result is not None and result.utcoffset() == timedelta(0)
    with pytest.raises(ValueError):
        target_at(SCHEME["I"], datetime(2024, 7, 1, 12, 0))


def test_scheme_flags() -> None:
    assert [g.code for g in sorted(SCHEME.values(), key=lambda g: g.priority)] == list("ISER")
    assert SCHEME["I"].auto_dispatch and SCHEME["S"].auto_dispatch
    assert not SCHEME["E"].auto_dispatch and not SCHEME["R"].auto_dispatch
    assert SCHEME["R"].closes_on_creation and not SCHEME["I"].closes_on_creation


# ---------------------------------------------------------------- duplicates


def test_related_types_symmetric_over_catalogue() -> None:
    for a, b in itertools.product(CAT, repeat=2):
        assert related_types(a, b, CAT) == related_types(b, a, CAT), (a, b)
    assert related_types("RTC_INJURY", "RTC_DAMAGE", CAT)
    assert related_types("VIOLENCE", "SEXUAL_OFFENCE", CAT)  # same broad category
    assert not related_types("NOISE", "FIREARMS", CAT)
    assert related_types("NOPE", "NOPE", CAT) and not related_types("NOPE", "THEFT", CAT)


_dist = st.floats(min_value=0, max_value=800, allow_nan=False)
_age = st.floats(min_value=0, max_value=5000, allow_nan=False)
_flags = st.tuples(st.booleans(), st.booleans(), st.booleans())


@given(_dist, _dist, _age, _age, _flags)
def test_duplicate_score_monotone(
    d1: float, d2: float, a1: float, a2: float, flags: tuple[bool, bool, bool]
) -> None:
    same_type, related, phone = flags
    near, far = sorted((d1, d2))
    new, old = sorted((a1, a2))
    best = duplicate_score(near, new, same_type, related, phone)
    assert 0.0 <= best <= 1.0
    assert duplicate_score(far, new, same_type, related, phone) <= best
    assert duplicate_score(near, old, same_type, related, phone) <= best
    assert duplicate_score(near, new, True, related, phone) >= best
    assert duplicate_score(near, new, same_type, True, phone) >= best
    assert duplicate_score(near, new, same_type, related, True) >= best


@given(st.floats(min_value=500, max_value=1e6), _age, _flags)
def test_duplicate_score_zero_outside_window(
    d: float, a: float, flags: tuple[bool, bool, bool]
) -> None:
    assert duplicate_score(d, a, *flags) == 0.0
    assert duplicate_score(10, 3600 + a, *flags) == 0.0


def test_duplicate_score_examples_and_config() -> None:
    assert duplicate_score(0, 0, True, True) == 1.0
    assert duplicate_score(0, 0, False, False) < duplicate_score(0, 0, False, True) < 1.0
    assert duplicate_score(600, 0, True, True, max_distance_m=1000) > 0
    with pytest.raises(ValueError):
        duplicate_score(float("nan"), 0, True, True)
