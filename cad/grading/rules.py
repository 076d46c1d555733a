"""Call grading: incident catalogue, grade scheme and grading rules, all loaded from data.

Everything here is pure apart from the loaders, which read the JSON files beside this
module on first use only, so a control room can change grading without a code release and
importing the package never touches the disk.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from cad.markers.catalogue import load_categories
from dispatch.model import GradeOrder

DATA_DIR = Path(__file__).parent
CATALOGUE_FILE = DATA_DIR / "incident_types.json"
SCHEME_FILE = DATA_DIR / "grade_scheme.json"
RULES_FILE = DATA_DIR / "grading_rules.json"

# The dispatch engine only knows these unit capabilities; any other name in a plan
# would never be filled, so it is rejected at load rather than discovered on a live call.
CAPABILITIES = frozenset({"response", "armed", "dog", "traffic", "public_order", "cid"})
BOOL_RISK_FIELDS = frozenset(
    {
        "weapons",
        "injuries",
        "offender_present",
        "ongoing",
        "vulnerable",
        "offender_detained",
        "evidence_at_risk",
        "hate_motivated",
    }
)
LEVEL_RISK_FIELDS = frozenset({"threat", "harm", "risk"})
LEVELS = frozenset({"low", "medium", "high"})
# Categories where one event produces calls typed differently by each caller (a fight is
# reported as assault, disorder, knife...), so duplicate detection treats them as one.
BROAD_CATEGORIES = frozenset({"violence", "public_order"})
DEFAULT_RULE_ID = "default"

_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


class GradingDataError(ValueError):
    """A grading data file is malformed; the message names the file, item and key."""


@dataclass(frozen=True, slots=True)
class PlanItem:
    capability: str
    count: int


@dataclass(frozen=True, slots=True)
class IncidentType:
    code: str
    name: str
    category: str
    default_grade: str
    response_plan: tuple[PlanItem, ...]
    related: frozenset[str]
    on_scene_limit_min: int


@dataclass(frozen=True, slots=True)
class Grade:
    code: str
    name: str
    target_s: int | None
    auto_dispatch: bool
    closes_on_creation: bool
    priority: int
    # Extended calls have no attendance target but must be booked within a window.
    appointment_s: int | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    grade: str
    when: Mapping[str, Any]
    upgrade_only: bool = True


@dataclass(frozen=True, slots=True)
class GradeDecision:
    grade: str
    rule_id: str
    reason: str


# --------------------------------------------------------------------------- loading


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GradingDataError(f"{path.name}: cannot read: {exc}") from exc


def _items(raw: Any, source: str, key: str) -> list[Mapping[str, Any]]:
    if not isinstance(raw, Mapping) or not isinstance(raw.get(key), list):
        raise GradingDataError(f"{source}: key '{key}': expected a list at the top level")
    items: list[Mapping[str, Any]] = raw[key]
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise GradingDataError(f"{source}: {key}[{i}]: expected an object")
    return items


def _is_int(value: object) -> bool:
    # bool is an int subclass; "true" as a count or target is a data error, not 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _field(item: Mapping[str, Any], key: str, kind: str, where: str) -> Any:
    if key not in item:
        raise GradingDataError(f"{where}: key '{key}': missing")
    value = item[key]
    ok = {
        "str": isinstance(value, str) and value != "",
        "bool": isinstance(value, bool),
        "int": _is_int(value) and value > 0,
        "int?": value is None or (_is_int(value) and value > 0),
        "list": isinstance(value, list),
    }[kind]
    if not ok:
        expected = {
            "str": "a non-empty string",
            "bool": "true or false",
            "int": "a positive integer",
            "int?": "a positive integer or null",
            "list": "a list",
        }[kind]
        raise GradingDataError(f"{where}: key '{key}': expected {expected}, got {value!r}")
    return value


def parse_scheme(raw: Any, source: str = SCHEME_FILE.name) -> dict[str, Grade]:
    grades: dict[str, Grade] = {}
    priorities: set[int] = set()
    for i, item in enumerate(_items(raw, source, "grades")):
        where = f"{source}: grade {item.get('code', f'#{i}')!r}"
        code = _field(item, "code", "str", where)
        if code in grades:
            raise GradingDataError(f"{where}: key 'code': duplicate grade")
        priority = _field(item, "priority", "int", where)
        if priority in priorities:
            raise GradingDataError(f"{where}: key 'priority': {priority} used twice")
        priorities.add(priority)
        grades[code] = Grade(
            code=code,
            name=_field(item, "name", "str", where),
            target_s=_field(item, "target_s", "int?", where),
            auto_dispatch=_field(item, "auto_dispatch", "bool", where),
            closes_on_creation=_field(item, "closes_on_creation", "bool", where),
            priority=priority,
            appointment_s=_field(item, "appointment_s", "int?", where)
            if "appointment_s" in item
            else None,
        )
    if not grades:
        raise GradingDataError(f"{source}: key 'grades': no grades defined")
    return grades


def parse_catalogue(
    raw: Any, scheme: Mapping[str, Grade], source: str = CATALOGUE_FILE.name
) -> dict[str, IncidentType]:
    types: dict[str, IncidentType] = {}
    for i, item in enumerate(_items(raw, source, "incident_types")):
        where = f"{source}: incident type {item.get('code', f'#{i}')!r}"
        code = _field(item, "code", "str", where)
        if not _CODE_RE.match(code):
            raise GradingDataError(f"{where}: key 'code': must be UPPER_SNAKE_CASE")
        if code in types:
            raise GradingDataError(f"{where}: key 'code': duplicate incident type")
        grade = _field(item, "default_grade", "str", where)
        if grade not in scheme:
            raise GradingDataError(f"{where}: key 'default_grade': unknown grade {grade!r}")
        plan: list[PlanItem] = []
        for j, step in enumerate(_field(item, "response_plan", "list", where)):
            step_where = f"{where}: response_plan[{j}]"
            if not isinstance(step, Mapping):
                raise GradingDataError(f"{step_where}: expected an object")
            capability = _field(step, "capability", "str", step_where)
            if capability not in CAPABILITIES:
                raise GradingDataError(
                    f"{step_where}: key 'capability': unknown capability {capability!r} "
                    f"(known: {', '.join(sorted(CAPABILITIES))})"
                )
            plan.append(PlanItem(capability, _field(step, "count", "int", step_where)))
        # A grade that closes on creation never dispatches, so a plan there is a data slip.
        if plan and scheme[grade].closes_on_creation:
            raise GradingDataError(
                f"{where}: key 'response_plan': must be empty for grade {grade!r}"
            )
        related = _field(item, "related", "list", where)
        if not all(isinstance(r, str) for r in related):
            raise GradingDataError(f"{where}: key 'related': expected a list of codes")
        types[code] = IncidentType(
            code=code,
            name=_field(item, "name", "str", where),
            category=_field(item, "category", "str", where),
            default_grade=grade,
            response_plan=tuple(plan),
            related=frozenset(related),
            on_scene_limit_min=_field(item, "on_scene_limit_min", "int", where),
        )
    # Checked after the loop so a type may refer to one defined later in the file.
    for t in types.values():
        for other in sorted(t.related):
            if other not in types or other == t.code:
                raise GradingDataError(
                    f"{source}: incident type {t.code!r}: key 'related': "
                    f"{other!r} is not another known incident type"
                )
    return types


def _check_condition(
    cond: Any,
    path: str,
    where: str,
    catalogue: Mapping[str, IncidentType],
    marker_categories: Collection[str] | None = None,
) -> None:
    if not isinstance(cond, Mapping):
        raise GradingDataError(f"{where}: key '{path}': expected an object")
    categories = {t.category for t in catalogue.values()}
    for key, value in cond.items():
        key_path = f"{path}.{key}"
        if key in ("any", "all"):
            if not isinstance(value, list) or not value:
                raise GradingDataError(f"{where}: key '{key_path}': expected a non-empty list")
            for n, sub in enumerate(value):
                _check_condition(sub, f"{key_path}[{n}]", where, catalogue, marker_categories)
        elif key == "not":
            _check_condition(value, key_path, where, catalogue, marker_categories)
        elif key == "marker_in":
            if not isinstance(value, list) or not value:
                raise GradingDataError(f"{where}: key '{key_path}': expected a non-empty list")
            for v in value:
                if marker_categories is not None and v not in marker_categories:
                    raise GradingDataError(
                        f"{where}: key '{key_path}': unknown marker category {v!r}"
                    )
        elif key in ("type_in", "category_in"):
            known = catalogue.keys() if key == "type_in" else categories
            if not isinstance(value, list) or not value:
                raise GradingDataError(f"{where}: key '{key_path}': expected a non-empty list")
            for v in value:
                if v not in known:
                    raise GradingDataError(f"{where}: key '{key_path}': unknown value {v!r}")
        elif key.startswith("risk."):
            field = key.removeprefix("risk.")
            if field in BOOL_RISK_FIELDS:
                if not isinstance(value, bool):
                    raise GradingDataError(f"{where}: key '{key_path}': expected true or false")
            elif field in LEVEL_RISK_FIELDS:
                levels = value if isinstance(value, list) else [value]
                if not levels or any(v not in LEVELS for v in levels):
                    raise GradingDataError(
                        f"{where}: key '{key_path}': expected one or more of low, medium, high"
                    )
            else:
                raise GradingDataError(f"{where}: key '{key_path}': unknown risk field {field!r}")
        else:
            raise GradingDataError(f"{where}: key '{key_path}': unknown condition")


def parse_rules(
    raw: Any,
    catalogue: Mapping[str, IncidentType],
    scheme: Mapping[str, Grade],
    source: str = RULES_FILE.name,
    marker_categories: Collection[str] | None = None,
) -> list[Rule]:
    """``marker_categories``: the codes a ``marker_in`` condition may name (None: any)."""
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(_items(raw, source, "rules")):
        where = f"{source}: rule {item.get('id', f'#{i}')!r}"
        rule_id = _field(item, "id", "str", where)
        if rule_id in seen or rule_id == DEFAULT_RULE_ID:
            raise GradingDataError(f"{where}: key 'id': duplicate or reserved rule id")
        seen.add(rule_id)
        grade = _field(item, "grade", "str", where)
        if grade not in scheme:
            raise GradingDataError(f"{where}: key 'grade': unknown grade {grade!r}")
        # Required even though {} is valid: a forgotten condition would match every call.
        if "when" not in item:
            raise GradingDataError(f"{where}: key 'when': missing")
        when: Mapping[str, Any] = item["when"]
        _check_condition(when, "when", where, catalogue, marker_categories)
        rules.append(
            Rule(
                id=rule_id,
                description=_field(item, "description", "str", where),
                grade=grade,
                when=when,
                # Safe default: a rule may only lower a grade when it says so explicitly.
                upgrade_only=_field(item, "upgrade_only", "bool", where)
                if "upgrade_only" in item
                else True,
            )
        )
    return rules


def read_scheme(path: Path) -> dict[str, Grade]:
    return parse_scheme(_read_json(path), path.name)


def read_catalogue(
    path: Path, scheme: Mapping[str, Grade] | None = None
) -> dict[str, IncidentType]:
    return parse_catalogue(_read_json(path), scheme or load_scheme(), path.name)


def read_rules(
    path: Path,
    catalogue: Mapping[str, IncidentType] | None = None,
    scheme: Mapping[str, Grade] | None = None,
) -> list[Rule]:
    return parse_rules(
        _read_json(path), catalogue or load_catalogue(), scheme or load_scheme(), path.name
    )


@cache
def load_scheme() -> dict[str, Grade]:
    return read_scheme(SCHEME_FILE)


def grade_order(scheme: Mapping[str, Grade]) -> GradeOrder:
    """The scheme's grades by priority, most urgent first: how dispatch is told them."""
    return GradeOrder(tuple(g.code for g in sorted(scheme.values(), key=lambda g: g.priority)))


@cache
def load_catalogue() -> dict[str, IncidentType]:
    return read_catalogue(CATALOGUE_FILE)


@cache
def load_rules() -> list[Rule]:
    return parse_rules(
        _read_json(RULES_FILE),
        load_catalogue(),
        load_scheme(),
        RULES_FILE.name,
        marker_categories=load_categories().keys(),
    )


# --------------------------------------------------------------------------- grading


def _risk_level(risk: Mapping[str, object], field: str) -> str | None:
    value = risk.get(field)
    return value.lower() if isinstance(value, str) else None


def matches(
    cond: Mapping[str, Any],
    incident_type: IncidentType,
    risk: Mapping[str, object],
    markers: Collection[str] = (),
) -> bool:
    """Whether a (validated) condition holds; all keys of one object must hold.
    ``markers``: categories of the warning markers that match the call."""
    for key, value in cond.items():
        if key == "any":
            ok = any(matches(sub, incident_type, risk, markers) for sub in value)
        elif key == "all":
            ok = all(matches(sub, incident_type, risk, markers) for sub in value)
        elif key == "not":
            ok = not matches(value, incident_type, risk, markers)
        elif key == "marker_in":
            ok = any(m in value for m in markers)
        elif key == "type_in":
            ok = incident_type.code in value
        elif key == "category_in":
            ok = incident_type.category in value
        else:
            field = key.removeprefix("risk.")
            if field in BOOL_RISK_FIELDS:
                # Only a real True counts: an unanswered or garbled answer must not
                # trigger a rule, and "missing" reads as "no".
                ok = (risk.get(field) is True) == value
            else:
                levels = value if isinstance(value, list) else [value]
                ok = _risk_level(risk, field) in levels
        if not ok:
            return False
    return True


def _marker_codes(cond: Any) -> set[str]:
    """Every category a condition's ``marker_in`` names, however deeply nested."""
    found: set[str] = set()
    if isinstance(cond, Mapping):
        for key, value in cond.items():
            if key == "marker_in":
                found.update(value)
            elif key in ("any", "all"):
                for sub in value:
                    found |= _marker_codes(sub)
            elif key == "not":
                found |= _marker_codes(value)
    return found


def grade_call(
    incident_type: IncidentType,
    risk: Mapping[str, object],
    rules: Sequence[Rule] | None = None,
    scheme: Mapping[str, Grade] | None = None,
    markers: Mapping[str, str] | None = None,
) -> GradeDecision:
    """Grade a call: the first applicable rule wins, else the type's default grade.

    Unknown risk keys are ignored and missing yes/no answers count as "no". An
    ``upgrade_only`` rule is skipped when its grade is less urgent than the type's
    default, so e.g. a firearms call stays Immediate whatever the answers.
    ``markers`` maps the categories of the warning markers matching the call to their
    names; a rule that tests them names them in its reason.
    """
    rules = load_rules() if rules is None else rules
    scheme = load_scheme() if scheme is None else scheme
    markers = markers or {}
    default_priority = scheme[incident_type.default_grade].priority
    for rule in rules:
        if rule.upgrade_only and scheme[rule.grade].priority > default_priority:
            continue
        if matches(rule.when, incident_type, risk, markers.keys()):
            reason = f"Rule {rule.id}: {rule.description}"
            named = sorted(markers[c] for c in _marker_codes(rule.when) if c in markers)
            if named:
                reason += f" (marker: {', '.join(named)})"
            return GradeDecision(rule.grade, rule.id, reason)
    return GradeDecision(
        incident_type.default_grade, DEFAULT_RULE_ID, f"Default grade for {incident_type.name}"
    )


def target_at(grade: Grade, created_at: datetime) -> datetime | None:
    """When the incident must be attended (or, for appointment grades, booked) by.

    Returns None for grades with neither a target nor an appointment window (Referred).
    """
    if created_at.tzinfo is None or created_at.utcoffset() is None:
        raise ValueError("created_at must be timezone-aware")
    seconds = grade.target_s if grade.target_s is not None else grade.appointment_s
    if seconds is None:
        return None
    return created_at.astimezone(UTC) + timedelta(seconds=seconds)


# --------------------------------------------------------------------------- duplicates


def related_types(a: str, b: str, catalogue: Mapping[str, IncidentType]) -> bool:
    """Whether calls of types a and b may describe the same event (symmetric)."""
    if a == b:
        return True
    ta, tb = catalogue.get(a), catalogue.get(b)
    if ta is None or tb is None:
        return False
    if b in ta.related or a in tb.related:
        return True
    return ta.category == tb.category and ta.category in BROAD_CATEGORIES


def duplicate_score(
    distance_m: float,
    age_s: float,
    same_type: bool,
    related: bool,
    same_phone: bool = False,
    *,
    max_distance_m: float = 500.0,
    max_age_s: float = 3600.0,
) -> float:
    """Likelihood in [0, 1] that a new call is about an existing incident.

    proximity = (1 - distance/max_distance) * (1 - age/max_age), so it is 0 at or beyond
    either limit and falls linearly with both. It is weighted by type agreement
    (same 1.0, related 0.7, otherwise 0.35: callers often mis-type the same event), and a
    call from the same phone closes half the remaining gap to 1, scaled by proximity so
    a repeat caller far away or long ago still scores 0. The result is non-increasing in
    distance and age and non-decreasing in each flag.
    """
    if max_distance_m <= 0 or max_age_s <= 0:
        raise ValueError("max_distance_m and max_age_s must be positive")
    if math.isnan(distance_m) or math.isnan(age_s):
        raise ValueError("distance_m and age_s must be numbers")
    # Negative values come from clock skew or rounding; treat them as "here, now".
    distance = max(distance_m, 0.0)
    age = max(age_s, 0.0)
    if distance >= max_distance_m or age >= max_age_s:
        return 0.0
    proximity = (1.0 - distance / max_distance_m) * (1.0 - age / max_age_s)
    weight = 1.0 if same_type else 0.7 if related else 0.35
    score = proximity * weight
    if same_phone:
        score += (1.0 - score) * 0.5 * proximity
    return min(max(score, 0.0), 1.0)
