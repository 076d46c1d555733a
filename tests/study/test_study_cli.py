"""`cad study` on the first hours of the SF week, through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cad.study.run import run_study
from cad.study.sources import MONTGOMERY, SF_WEEK, read_fleet, read_montgomery, read_sf
from gis.areas import AreaSet

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not SF_WEEK.is_file(), reason="SF week not in shared data")


def study(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cad.cli", "study", "--out", str(out), *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_six_hours_of_sf_through_the_cli_writes_the_report(tmp_path: Path) -> None:
    done = study(tmp_path, "--log", "sf", "--hours", "6", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr  # the progress bar
    assert (tmp_path / "report.md").read_text().startswith("# Study: sf log")
    assert list(tmp_path.glob("*.png"))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["meta"]["seed"] == 3 and results["meta"]["hours"] == 6
    calls = read_sf(SF_WEEK, AreaSet.london_default(), hours=6).calls
    assert results["calls"] == len(calls) > 0
    assert all(c.received_s < 6 * 3600 for c in calls)
    grades = results["grades"]
    assert sum(g["calls"] for g in grades.values()) == len(calls)
    immediate = grades["I"]
    assert immediate["calls"] > 0 and immediate["dispatched"] == immediate["calls"]
    assert 0 <= immediate["on_scene_within_target_pct"] <= 100
    assert immediate["target_s"] == 900
    assert "response_car" in results["utilisation"]["by_unit_type"]


def test_same_seed_same_results_other_seed_other_times_on_scene(tmp_path: Path) -> None:
    def figures(seed: int, name: str) -> dict[str, object]:
        run_study(seed=seed, out=tmp_path / name, hours=6, progress=False)
        doc = json.loads((tmp_path / name / "results.json").read_text())
        doc.pop("meta")
        return doc  # type: ignore[no-any-return]

    first = figures(7, "a")
    assert figures(7, "b") == first
    assert figures(8, "c")["utilisation"] != first["utilisation"]


def test_a_fleet_file_replaces_the_demo_fleet(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(
        "callsign,unit_type,capabilities,lat,lng,shift_start_h,shift_end_h\n"
        "AA1,response_car,response,51.5074,-0.1278,,\n"
        "AA2,traffic,traffic response,51.45,-0.05,7,19\n"
    )
    units = read_fleet(fleet, AreaSet.london_default())
    assert [u.capabilities for u in units] == [
        frozenset({"response"}),
        frozenset({"traffic", "response"}),
    ]
    assert units[0].area_code is not None and units[1].shift_end_h == 19
    as_json = tmp_path / "fleet.json"
    as_json.write_text(
        '{"units": [{"callsign": "AA1", "unit_type": "dog", "lat": 51.5, "lng": -0.1}]}'
    )
    assert read_fleet(as_json, AreaSet.london_default())[0].capabilities == {"dog"}
    done = study(tmp_path / "out", "--hours", "2", "--fleet", str(fleet))
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["units"] == 2
    assert set(results["utilisation"]["by_unit_type"]) == {"response_car", "traffic"}


def test_missing_fleet_file_is_refused(tmp_path: Path) -> None:
    done = study(tmp_path, "--fleet", str(tmp_path / "nope.csv"))
    assert done.returncode != 0 and "no such file" in done.stderr


@pytest.mark.skipif(not MONTGOMERY.is_file(), reason="Montgomery sample not in shared data")
def test_montgomery_surge_hours_queue_for_traffic_units(tmp_path: Path) -> None:
    log = read_montgomery(MONTGOMERY, AreaSet.london_default(), hours=1.5)
    assert log.start.isoformat().startswith("2018-11-15")
    titles = {c.source_type: c.incident_type for c in log.calls}
    assert titles["Traffic: DISABLED VEHICLE -"] == "ADVICE"
    assert titles["EMS: FALL VICTIM"] == "CONCERN_WELFARE"  # by the "EMS" prefix
    summary = run_study(log="montgomery", seed=1, out=tmp_path, hours=1.5, progress=False)
    grades = summary["grades"]
    assert grades["R"]["calls"] == grades["R"]["closed_without_dispatch"] > 0
    # Collisions need one of ten traffic units each: the surge leaves calls waiting.
    assert summary["queue"]["max_pending"] > 10
    assert grades["S"]["received_to_dispatch_s"]["p90"] > 0
