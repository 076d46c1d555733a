import json
import math

import numpy as np
import pytest

from gis.eta import (
    DEFAULT_PARAMS,
    KolesarEta,
    KolesarParams,
    params_from_document,
    unknown_types,
)
from gis.eta_fit import (
    ErrorStats,
    error_stats,
    fit_vehicle,
    holdout_split,
    params_document,
    predict,
)

TRUE = KolesarParams.from_vehicle(90.0, 0.15, 12.0)  # d_crit 960 m


def synthetic(n: int, noise_s: float, outliers: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = rng.uniform(100, 6_000, n)
    t = predict(TRUE, d) + rng.normal(0, noise_s, n)
    # Late pumps (re-sent, stood down, wrong grid reference): only ever slower.
    late = rng.random(n) < outliers
    t[late] += rng.uniform(300, 900, int(late.sum()))
    return d, t


def test_predict_is_eta_s() -> None:
    d = np.array([0.0, 10, 500, 959.9, 960, 961, 5_000, -5])
    assert predict(TRUE, d).tolist() == pytest.approx([TRUE.eta_s(x) for x in d])


def test_recovers_exact_parameters_without_noise() -> None:
    d, t = synthetic(400, noise_s=0, outliers=0, seed=1)
    fit = fit_vehicle(d, t)
    assert fit.mobilise_s == pytest.approx(90.0, rel=0.01)
    assert fit.accel_mps2 == pytest.approx(0.15, rel=0.02)
    assert fit.cruise_mps == pytest.approx(12.0, rel=0.01)
    assert fit.mae_s < 1.0


def test_recovers_parameters_from_noisy_data_with_outliers() -> None:
    # Tolerance: mobilisation within 10 s, accel within 15%, cruise within 5%, and the
    # curve within 10 s of the truth from 200 m to 6 km; 30 s noise, 5% of rows late
    # by 5-15 minutes (they would shift a least-squares fit ~30 s: 5% of 600 s).
    d, t = synthetic(3_000, noise_s=30, outliers=0.05, seed=2)
    fit = fit_vehicle(d, t)
    assert abs(fit.mobilise_s - 90.0) < 10
    assert fit.accel_mps2 == pytest.approx(0.15, rel=0.15)
    assert fit.cruise_mps == pytest.approx(12.0, rel=0.05)
    grid = np.linspace(200, 6_000, 59)
    assert np.max(np.abs(predict(fit.params, grid) - predict(TRUE, grid))) < 10


def test_fitted_curve_is_non_negative_continuous_and_non_decreasing() -> None:
    # Data no vehicle could produce (farther is faster): the constraints still hold.
    rng = np.random.default_rng(3)
    d = rng.uniform(0, 8_000, 500)
    t = 900 - 0.1 * d + rng.normal(0, 40, 500)
    fit = fit_vehicle(d, t)
    p = fit.params
    assert min(fit.mobilise_s, p.a, p.b, p.c, p.e, p.d_crit_m) >= 0
    assert p.c + p.e * p.d_crit_m == pytest.approx(p.a + p.b * math.sqrt(p.d_crit_m))
    curve = predict(p, np.linspace(0, 20_000, 4_001))
    assert np.all(np.diff(curve) >= -1e-9)


def test_error_stats_by_hand() -> None:
    predicted = np.array([100.0, 200, 300, 400, 500])
    observed = np.array([110.0, 190, 330, 400, 450])
    # errors -10, 10, -30, 0, 50; |errors| sorted 0, 10, 10, 30, 50: p90 sits 0.6 of the
    # way from 30 to 50.
    assert error_stats(predicted, observed) == ErrorStats(
        n=5, median_signed_s=0.0, mae_s=20.0, p90_abs_s=42.0
    )
    # errors -30, -50: the median of an even count is the mean of the middle two.
    s = error_stats(np.array([300.0, 300]), np.array([330.0, 350]))
    assert (s.median_signed_s, s.mae_s, s.p90_abs_s) == (-40.0, 40.0, 48.0)


def test_holdout_split_is_seeded_disjoint_and_complete() -> None:
    fit, test = holdout_split(1_000, 0.2, seed=7)
    assert len(test) == 200 and len(fit) == 800
    assert sorted([*fit, *test]) == list(range(1_000))
    again_fit, again_test = holdout_split(1_000, 0.2, seed=7)
    assert again_test.tolist() == test.tolist() and again_fit.tolist() == fit.tolist()
    assert holdout_split(1_000, 0.2, seed=8)[1].tolist() != test.tolist()
    with pytest.raises(ValueError):
        holdout_split(10, 1.0)


def test_fit_refuses_unusable_input() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        fit_vehicle(np.array([1.0, 2.0]), np.array([100.0, 110.0]))
    with pytest.raises(ValueError, match="finite"):
        fit_vehicle(np.array([1.0, 2.0, math.nan]), np.array([100.0, 110.0, 120.0]))


def _doc(**types: object) -> dict[str, object]:
    return {"model": "kolesar", "unit_types": types}


def test_params_document_round_trips_into_the_service_model() -> None:
    d, t = synthetic(300, noise_s=10, outliers=0, seed=4)
    fit = fit_vehicle(d, t)
    doc = json.loads(json.dumps(_doc(response_car=params_document(fit), pump=params_document(fit))))
    params = params_from_document(doc)
    assert params["response_car"] == fit.params
    assert unknown_types(params) == ["pump"]
    model = KolesarEta.with_params(params)
    assert "pump" not in model.params
    for x in (0.0, 700, 1_500, 4_000):
        assert model.eta_s(x, "response_car") == pytest.approx(fit.params.eta_s(x))
        assert model.eta_s(x, "dog") == DEFAULT_PARAMS["dog"].eta_s(x)
        assert model.eta_s(x, "no_such_type") == model.eta_s(x, "response_car")
        # Still a lower bound over every type, with the fitted one among them.
        assert model.min_eta_s(x) <= min(model.eta_s(x, u) for u in model.params) + 1e-9


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "not a JSON object"),
        ({"model": "osrm", "unit_types": {}}, '"model" must be "kolesar"'),
        ({"model": "kolesar"}, '"unit_types" must be'),
        (_doc(response_car=[1, 2]), "unit_types.response_car: not an object"),
        (_doc(response_car={"a": 1, "b": 2, "c": 3, "e": 0.1}), "d_crit_m: a number"),
        (_doc(response_car={"a": 1, "b": 2, "c": 3, "e": "x", "d_crit_m": 4}), "e: a number"),
        (_doc(response_car={"a": -1, "b": 2, "c": 3, "e": 0.1, "d_crit_m": 4}), ">= 0"),
        (_doc(response_car={"a": 60, "b": 5, "c": 0, "e": 0.1, "d_crit_m": 900}), "drop"),
    ],
)
def test_malformed_params_documents_are_refused(doc: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        params_from_document(doc)
