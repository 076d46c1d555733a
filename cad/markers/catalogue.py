"""Warning marker categories, loaded from data (categories.json) so a force adds one
without a code change. Pure: nothing here touches the database."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CATEGORIES_FILE = Path(__file__).with_name("categories.json")
SEVERITIES = ("high", "medium", "low")


class MarkerDataError(ValueError):
    """The categories file is malformed; the message names the entry and key."""


@dataclass(frozen=True, slots=True)
class MarkerCategory:
    code: str
    name: str
    severity: str
    officer_safety: bool
    description: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "officer_safety": self.officer_safety,
            "description": self.description,
        }


def parse_categories(raw: Any, source: str = CATEGORIES_FILE.name) -> dict[str, MarkerCategory]:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("categories"), list):
        raise MarkerDataError(f"{source}: key 'categories': expected a list")
    out: dict[str, MarkerCategory] = {}
    for i, item in enumerate(raw["categories"]):
        where = f"{source}: categories[{i}]"
        if not isinstance(item, Mapping):
            raise MarkerDataError(f"{where}: expected an object")
        code = item.get("code")
        if not isinstance(code, str) or not code or not code.replace("_", "").isalnum():
            raise MarkerDataError(f"{where}: key 'code': expected a lower_snake_case code")
        if code in out:
            raise MarkerDataError(f"{where}: key 'code': duplicate {code!r}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise MarkerDataError(f"{where}: key 'name': expected a non-empty string")
        severity = item.get("severity")
        if severity not in SEVERITIES:
            raise MarkerDataError(f"{where}: key 'severity': one of {', '.join(SEVERITIES)}")
        safety = item.get("officer_safety", False)
        if not isinstance(safety, bool):
            raise MarkerDataError(f"{where}: key 'officer_safety': expected true or false")
        out[code] = MarkerCategory(code, name, severity, safety, str(item.get("description", "")))
    if not out:
        raise MarkerDataError(f"{source}: no categories defined")
    return out


@cache
def load_categories() -> dict[str, MarkerCategory]:
    try:
        raw = json.loads(CATEGORIES_FILE.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MarkerDataError(f"{CATEGORIES_FILE.name}: cannot read: {exc}") from exc
    return parse_categories(raw)
