"""Supervisor KPIs, cleaned as national statistics clean them (pure computation)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

MIN_RESPONSE_S = 60
MAX_RESPONSE_S = 3600
ANSWER_TARGET_S = 10


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values, None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    # Nearest rank is ceil(q/100 * n); round(x + 0.5) rounds halves to even and overshot.
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def response_kpis(
    incidents: Iterable[Mapping[str, Any]], targets_s: Mapping[str, int | None]
) -> dict[str, dict[str, Any]]:
    """Per grade: counts, attended, share within target, median and p90 response.

    Response = created → first unit on scene. Excluded from the times (and counted, so a
    reader knows): out-of-order timestamps, and under a minute or over an hour.
    """
    per: dict[str, dict[str, Any]] = {}
    times: dict[str, list[float]] = {}
    for row in incidents:
        grade = row["grade"]
        entry = per.setdefault(
            grade,
            {
                "count": 0,
                "open": 0,
                "attended": 0,
                "within_target": 0,
                "excluded": 0,
                "excluded_reasons": Counter(),
            },
        )
        entry["count"] += 1
        if row["status"] != "closed":
            entry["open"] += 1
        on_scene = row["first_on_scene_at"]
        if on_scene is None:
            continue
        entry["attended"] += 1
        seconds = (on_scene - row["created_at"]).total_seconds()
        if seconds < 0:
            entry["excluded"] += 1
            entry["excluded_reasons"]["out_of_order"] += 1
            continue
        if seconds < MIN_RESPONSE_S:
            entry["excluded"] += 1
            entry["excluded_reasons"]["under_1_min"] += 1
            continue
        if seconds > MAX_RESPONSE_S:
            entry["excluded"] += 1
            entry["excluded_reasons"]["over_1_hour"] += 1
            continue
        times.setdefault(grade, []).append(seconds)
        target = targets_s.get(grade)
        if target is not None and seconds <= target:
            entry["within_target"] += 1
    for grade, entry in per.items():
        values = times.get(grade, [])
        counted = len(values)
        entry["response_counted"] = counted
        entry["target_s"] = targets_s.get(grade)
        entry["share_within_target"] = (
            round(entry["within_target"] / counted, 4)
            if counted and entry["target_s"] is not None
            else None
        )
        entry["median_s"] = percentile(values, 50)
        entry["p90_s"] = percentile(values, 90)
        entry["excluded_reasons"] = dict(entry["excluded_reasons"])
    return per


def answer_kpis(calls: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    waits = [
        (c["answered_at"] - c["received_at"]).total_seconds()
        for c in calls
        if c["answered_at"] >= c["received_at"]
    ]
    within = sum(1 for w in waits if w <= ANSWER_TARGET_S)
    return {
        "calls": len(waits),
        "answered_within_10s": within,
        "share_within_10s": round(within / len(waits), 4) if waits else None,
        "target_share": 0.9,
    }


def per_quarter_hour(
    calls: Iterable[Mapping[str, Any]], since: datetime, until: datetime
) -> list[dict[str, Any]]:
    start = since.replace(minute=since.minute - since.minute % 15, second=0, microsecond=0)
    buckets: dict[datetime, int] = {}
    t = start
    while t <= until:
        buckets[t] = 0
        t += timedelta(minutes=15)
    for c in calls:
        at = c["received_at"]
        key = at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)
        if key in buckets:
            buckets[key] += 1
    return [{"at": k.isoformat(), "calls": v} for k, v in sorted(buckets.items())]
