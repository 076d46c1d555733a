import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gis.eta import DEFAULT_PARAMS, EtaModel, KolesarEta, KolesarParams, eta_for

TYPES = [*DEFAULT_PARAMS, "unknown_type"]
distances = st.floats(min_value=0, max_value=200_000, allow_nan=False)
# No timed assertions in tests (speed is the bench's job): hypothesis' 200 ms per-example
# deadline failed these on a loaded machine.
untimed = settings(deadline=None)


def test_is_an_eta_model() -> None:
    model: EtaModel = KolesarEta()
    assert model.eta_s(100, "response_car") > 0


def test_car_calibration() -> None:
    m = KolesarEta()
    assert 240 <= m.eta_s(1_400, "response_car") <= 300
    assert 390 <= m.eta_s(3_000, "response_car") <= 450


def test_foot_is_walking_pace() -> None:
    m = KolesarEta()
    assert m.eta_s(0, "foot") == pytest.approx(30)
    assert m.eta_s(1_400, "foot") == pytest.approx(30 + 1_000)


def test_unknown_type_falls_back_to_response_car() -> None:
    m = KolesarEta()
    assert m.eta_s(2_000, "hovercraft") == m.eta_s(2_000, "response_car")


@untimed
@given(st.sampled_from(TYPES), distances, distances)
def test_monotone_and_non_negative(unit_type: str, d1: float, d2: float) -> None:
    m = KolesarEta()
    lo, hi = sorted((d1, d2))
    assert 0 <= m.eta_s(lo, unit_type) <= m.eta_s(hi, unit_type)
    assert 0 <= m.min_eta_s(lo) <= m.min_eta_s(hi)


@untimed
@given(distances)
def test_min_is_lower_bound(d: float) -> None:
    m = KolesarEta()
    exact = min(m.eta_s(d, t) for t in TYPES)
    # A lower bound (searches stop on it), and a tight one: never below the true
    # minimum 10 m closer (the table's step).
    assert m.min_eta_s(d) <= exact
    assert m.min_eta_s(d) >= min(m.eta_s(max(d - 10.0, 0.0), t) for t in TYPES)


def test_continuous_at_d_crit() -> None:
    for p in DEFAULT_PARAMS.values():
        below = p.eta_s(p.d_crit_m - 1e-6)
        assert p.eta_s(p.d_crit_m) == pytest.approx(below, abs=1e-3)


def test_params_reject_downward_jump() -> None:
    with pytest.raises(ValueError):
        KolesarParams(a=60, b=5, c=0, e=0.1, d_crit_m=1000)


def test_overrides_merge_into_defaults() -> None:
    fast = KolesarParams.from_vehicle(10, 1.0, 30)
    m = KolesarEta({"response_car": fast})
    assert m.eta_s(1_000, "response_car") < KolesarEta().eta_s(1_000, "response_car")
    assert m.eta_s(1_000, "dog") == KolesarEta().eta_s(1_000, "dog")


def test_negative_distance_clamped_nan_rejected() -> None:
    m = KolesarEta()
    assert m.eta_s(-5, "response_car") == m.eta_s(0, "response_car")
    with pytest.raises(ValueError):
        m.eta_s(float("nan"), "response_car")


def test_eta_for_rounds() -> None:
    m = KolesarEta()
    assert eta_for(m, 1_400, "response_car") == round(m.eta_s(1_400, "response_car"))
