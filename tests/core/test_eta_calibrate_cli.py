"""`cad eta calibrate` on the real LFB 2009 attendances, and the service using its file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gis.eta import DEFAULT_PARAMS, KolesarParams
from tests.conftest import make_settings, running_api, shared_file
from tests.conftest import run_cad as cad

# Calibration reads files only: a database nobody can reach proves it needs none.
NO_DB = "postgresql://postgres@127.0.0.1:1/no_database"


def calibrate(*args: str) -> subprocess.CompletedProcess[str]:
    fires = shared_file("lfb_dwelling_fires_2009.csv")
    result = cad(NO_DB, "eta", "calibrate", "--file", str(fires), *args, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("eta") / "params.json"
    result = calibrate("--unit-type", "response_car", "--out", str(out), "--seed", "3")
    return out, result.stdout


def test_calibrate_beats_the_default_model_on_the_holdout(fitted: tuple[Path, str]) -> None:
    out, stdout = fitted
    doc = json.loads(out.read_text())
    assert doc["model"] == "kolesar" and doc["fitted_at"]
    # Every row has a position, a time and a station both lists can place.
    assert doc["source"]["rows_read"] == 6_708 and doc["source"]["rows_matched"] == 6_708
    assert "rows read: 6,708; matched: 6,708; skipped: 0" in stdout
    holdout = doc["holdout"]
    assert holdout["before"]["baseline"] == "response_car"
    assert holdout["before"]["n"] == holdout["after"]["n"] == round(6_708 * 0.2)
    assert holdout["after"]["mae_s"] < holdout["before"]["mae_s"]
    assert holdout["after"]["p90_abs_s"] < holdout["before"]["p90_abs_s"]
    # The absolute-error fit centres the errors; the default is optimistic for pumps.
    assert abs(holdout["after"]["median_signed_s"]) < 10 < -holdout["before"]["median_signed_s"]
    entry = doc["unit_types"]["response_car"]
    # The curve's coefficients are the vehicle's (the triple is rounded for reading).
    curve = KolesarParams(**{k: entry[k] for k in ("a", "b", "c", "e", "d_crit_m")})
    vehicle = KolesarParams.from_vehicle(
        entry["mobilise_s"], entry["accel_mps2"], entry["cruise_mps"]
    )
    for d in (100.0, 1_000.0, 5_000.0):
        assert curve.eta_s(d) == pytest.approx(vehicle.eta_s(d), abs=0.5)
    # Fire pumps turn out from a station: a longer mobilisation than a police car's 60 s.
    assert 60 < entry["mobilise_s"] < 180
    assert "before (response_car defaults)" in stdout and "after (fitted)" in stdout


def test_only_nearest_reproduces_the_issues_baseline() -> None:
    # Issue 14: the default model, where the recommended station was the one LFB sent,
    # is off by a median -24 s with a mean absolute error of 69 s.
    result = calibrate("--only-nearest")
    assert "--only-nearest: 5,009 rows" in result.stdout
    before = next(line for line in result.stdout.splitlines() if "before (" in line).split()
    n, median, mae = int(before[-4]), float(before[-3]), float(before[-2])
    assert n == round(5_009 * 0.2)
    assert -30 < median < -18 and 62 < mae < 76


def test_calibrate_by_hour_band_writes_one_entry_per_band(tmp_path: Path) -> None:
    out = tmp_path / "by.json"
    calibrate("--by", "hour", "--sample", "2000", "--out", str(out))
    by = json.loads(out.read_text())["by"]["hour"]
    assert sorted(by) == ["00-06", "07-09", "10-15", "16-19", "20-23"]
    assert sum(g["n_fit"] for g in by.values()) == 1_600
    assert all(g["own_fit"] and g["holdout"]["n"] > 0 for g in by.values())


def test_calibrate_errors_are_clear(tmp_path: Path) -> None:
    result = cad(NO_DB, "eta", "calibrate", "--file", str(tmp_path / "absent.csv"))
    assert result.returncode == 2 and "absent.csv: no such file" in result.stderr
    bad = tmp_path / "stations.csv"
    bad.write_text("station,x,y\nA,1,2\n")
    fires = str(shared_file("lfb_dwelling_fires_2009.csv"))
    result = cad(NO_DB, "eta", "calibrate", "--file", fires, "--stations", str(bad))
    assert result.returncode == 2 and "not a station list" in result.stderr


async def test_the_service_uses_the_fitted_params(
    fitted: tuple[Path, str], db_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    out, _ = fitted
    doc: dict[str, Any] = json.loads(out.read_text())
    fitted_car = doc["unit_types"]["response_car"]
    # A type the service does not dispatch is ignored, not added to the ETA envelope.
    doc["unit_types"]["pump"] = {**fitted_car, "a": 0.0, "c": fitted_car["c"] - fitted_car["a"]}
    path = tmp_path / "params.json"
    path.write_text(json.dumps(doc))
    settings = make_settings(db_url, redis_prefix, eta_params_file=str(path))
    async with running_api(settings) as api:
        eta = api.state.eta
        expected = KolesarParams(**{k: fitted_car[k] for k in ("a", "b", "c", "e", "d_crit_m")})
        for d in (300.0, 1_400.0, 3_000.0):
            assert eta.eta_s(d, "response_car") == pytest.approx(expected.eta_s(d))
            assert eta.eta_s(d, "response_car") != pytest.approx(
                DEFAULT_PARAMS["response_car"].eta_s(d), abs=1.0
            )
            assert eta.eta_s(d, "dog") == DEFAULT_PARAMS["dog"].eta_s(d)
        assert "pump" not in eta.params

    path.write_text(json.dumps({"model": "kolesar", "unit_types": {"response_car": {"a": -1}}}))
    with pytest.raises(RuntimeError, match=r"CAD_ETA_PARAMS_FILE .*params\.json: not an ETA"):
        async with running_api(settings):
            pass
