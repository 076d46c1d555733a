"""Replay parsers and load-shape profiles on the real files in ../shared/data."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime
from pathlib import Path

import pytest

from gis.areas import AreaSet
from loadtests import sources
from tests.conftest import shared_file

CATALOGUE = {
    t["code"]
    for t in json.loads(
        (
            Path(__file__).resolve().parents[2] / "cad" / "grading" / "incident_types.json"
        ).read_text()
    )["incident_types"]
}


@pytest.fixture(scope="module")
def london() -> AreaSet:
    return AreaSet.london_default()


def test_montgomery_surge_hour_has_302_calls_all_placed_in_london(london: AreaSet) -> None:
    calls = sources.read_montgomery(shared_file("montgomery_911_sample.csv"))
    assert len(calls) >= 3050
    surge = sources.window(calls, datetime(2018, 11, 15, 13, 0), hours=1)
    assert len(surge) == 302
    assert all(c.at < datetime(2018, 11, 15, 14, 0) for c in surge)
    outside = [(c.line, c.lat, c.lng) for c in calls if not london.contains(c.lat, c.lng)]
    assert outside == []
    assert {c.incident_type for c in calls} <= CATALOGUE
    # The affine map keeps the pattern: distinct places stay distinct.
    assert len({(round(c.lat, 4), round(c.lng, 4)) for c in calls}) > 1000


def test_montgomery_titles_map_by_meaning() -> None:
    assert sources.montgomery_type("Traffic: VEHICLE ACCIDENT -")[0] == "RTC_DAMAGE"
    code, risk = sources.montgomery_type("EMS: VEHICLE ACCIDENT")
    assert code == "RTC_INJURY" and risk["injuries"] is True
    assert sources.montgomery_type("EMS: CARDIAC ARREST")[1]["harm"] == "high"
    assert sources.montgomery_type("Fire: SOMETHING NEW")[0] == "CONCERN_WELFARE"


def test_lfb_incidents_only_inside_the_service_area(london: AreaSet) -> None:
    path = shared_file("london_dwelling_fires_and_stations.geojson")
    for inside in (None, london.contains):
        calls = sources.read_lfb_geojson(path, inside=inside)
        assert len(calls) == 3913  # the 93 stations are left out
        assert all(london.contains(c.lat, c.lng) for c in calls)
        assert all(a.at < b.at for a, b in zip(calls, calls[1:], strict=False))
    # Every LFB incident lies inside the real boundary: none is moved.
    raw = json.loads(path.read_text())["features"]
    moved = sum(
        1
        for f, c in zip(
            (f for f in raw if f["properties"].get("type") != "station"),
            sources.read_lfb_geojson(path, inside=london.contains),
            strict=True,
        )
        if (round(f["geometry"]["coordinates"][1], 6), round(f["geometry"]["coordinates"][0], 6))
        != (c.lat, c.lng)
    )
    assert moved == 0


def test_the_gis_free_stand_ins_lie_inside_london(london: AreaSet) -> None:
    cy, cx = sources.LONDON_CENTRE
    ry, rx = sources._ELLIPSE
    for i in range(720):
        t = i * math.pi / 360
        assert london.contains(cy + ry * math.sin(t), cx + rx * math.cos(t))
    s, w, n, e = sources.LONDON_BOX
    for lat, lng in ((s, w), (s, e), (n, w), (n, e)):
        assert london.contains(lat, lng)
    rng = random.Random(1)
    assert all(london.contains(*sources.random_london_point(rng)) for _ in range(2000))
    body = sources.random_call(rng, tag="k1")
    assert body["incident_type"] in CATALOGUE and body["description"].endswith("[lt:k1]")


def test_profiles_read_off_the_real_files() -> None:
    hourly = sources.seattle_hour_of_day(
        shared_file("seattle_fire_911_hourly_counts_2015-2022.csv")
    )
    assert len(hourly) == 24
    assert 2.0 < max(hourly) / min(hourly) < 3.5  # README: busiest hour 2.7x the quietest
    surge = sources.montgomery_surge_minutes(shared_file("montgomery_911_sample.csv"))
    assert surge[0] > 0 and surge[-1] > 0 and max(surge) >= 30


def test_schedule_compresses_time_and_multiplies() -> None:
    calls = sources.read_montgomery(shared_file("montgomery_911_sample.csv"))
    surge = sources.window(calls, datetime(2018, 11, 15, 13, 0), hours=1)
    plan = list(sources.schedule(surge, speed=60, multiply=2))
    assert len(plan) == 604
    assert plan[-1][0] <= 60.0  # an hour at 60x is a minute
    assert [p[0] for p in plan] == sorted(p[0] for p in plan)


def test_a_bad_file_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "log.csv"
    bad.write_text(
        "40.1,-75.3,EMS: FALL VICTIM,2016-01-15 12:01,X,Y\n40.1,-75.3,EMS: X,yesterday,X,Y\n"
    )
    with pytest.raises(sources.SourceError, match=r"line 2: timestamp"):
        sources.read_montgomery(bad)
