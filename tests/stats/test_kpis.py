"""Supervisor KPIs are pure functions of rows: checked against hand-worked answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cad.stats.service import percentile, response_kpis


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2], 50, 1),  # nearest rank ceil(0.5 * 2) = 1 (round-half-even once gave 2)
        (list(range(1, 11)), 90, 9),
        (list(range(1, 7)), 50, 3),
        (list(range(1, 5)), 50, 2),
        ([7], 90, 7),
        ([3, 1, 2], 100, 3),
        ([3, 1, 2], 0, 1),
    ],
)
def test_percentile_is_the_nearest_rank(values: list[int], q: float, expected: int) -> None:
    assert percentile([float(v) for v in values], q) == expected


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 50) is None


def test_response_kpis_count_clean_and_exclude() -> None:
    t0 = datetime(2026, 12, 2, 12, tzinfo=UTC)

    def row(grade: str, minutes: float | None, status: str = "closed") -> dict[str, object]:
        on_scene = t0 + timedelta(minutes=minutes) if minutes is not None else None
        return {"grade": grade, "status": status, "created_at": t0, "first_on_scene_at": on_scene}

    rows = [
        row("I", 5),
        row("I", 10),
        row("I", 20),  # past the 15-minute target
        row("I", 0.5),  # under a minute: a button pressed early, excluded
        row("I", -1),  # on scene before created: out of order, excluded
        row("I", 90),  # over an hour: excluded
        row("I", None, status="dispatched"),
        row("S", 30),
    ]
    kpis = response_kpis(rows, {"I": 900, "S": 3600})
    i = kpis["I"]
    assert (i["count"], i["open"], i["attended"], i["excluded"]) == (7, 1, 6, 3)
    assert i["excluded_reasons"] == {"under_1_min": 1, "out_of_order": 1, "over_1_hour": 1}
    assert i["response_counted"] == 3 and i["within_target"] == 2
    assert i["share_within_target"] == round(2 / 3, 4)
    assert i["median_s"] == 600 and i["p90_s"] == 1200
    assert kpis["S"]["median_s"] == 1800 and kpis["S"]["share_within_target"] == 1.0
