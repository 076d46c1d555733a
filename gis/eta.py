"""Travel time from straight-line distance.

The Kolesar & Blum (1973) emergency-vehicle model: a vehicle accelerates towards a cruise
speed, so short trips cost ~sqrt(distance) and long ones are linear. Road-network models
can replace it by implementing `EtaModel`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class EtaModel(Protocol):
    def eta_s(self, distance_m: float, unit_type: str) -> float:
        """Seconds from dispatch to arrival for a unit of this type."""
        ...

    def min_eta_s(self, distance_m: float) -> float:
        """A lower bound of `eta_s` over every unit type, non-decreasing in distance.

        Searches ordered by distance use it to stop once no farther unit can beat the best
        ETA found so far.
        """
        ...


@dataclass(frozen=True)
class KolesarParams:
    """t = a + b*sqrt(d) for d < d_crit_m, else c + e*d (seconds, metres)."""

    a: float
    b: float
    c: float
    e: float
    d_crit_m: float

    def __post_init__(self) -> None:
        for name in ("a", "b", "c", "e", "d_crit_m"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"KolesarParams.{name} must be finite and >= 0, got {v}")
        # Both branches increase; only a downward jump at d_crit could break monotonicity,
        # which searches that stop early on `min_eta_s` rely on.
        short_end = self.a + self.b * math.sqrt(self.d_crit_m)
        long_start = self.c + self.e * self.d_crit_m
        if long_start < short_end - 1e-6:
            raise ValueError(
                f"KolesarParams drop at d_crit ({long_start:.1f} s < {short_end:.1f} s)"
            )

    @classmethod
    def from_vehicle(cls, mobilise_s: float, accel_mps2: float, cruise_mps: float) -> KolesarParams:
        """Params for a vehicle that accelerates at a constant rate to a cruise speed.

        The accelerations are "effective" ones: they absorb junctions and traffic, so they
        are far below what the vehicle can physically do.
        """
        if accel_mps2 <= 0 or cruise_mps <= 0:
            raise ValueError("acceleration and cruise speed must be > 0")
        # Accelerating halfway and braking the rest gives 2*sqrt(d/acc) up to the distance
        # v^2/acc at which cruise speed is reached; beyond it the curve is linear, with
        # the same value and slope at the join.
        return cls(
            a=mobilise_s,
            b=2.0 / math.sqrt(accel_mps2),
            c=mobilise_s + cruise_mps / accel_mps2,
            e=1.0 / cruise_mps,
            d_crit_m=cruise_mps * cruise_mps / accel_mps2,
        )

    def eta_s(self, distance_m: float) -> float:
        if math.isnan(distance_m):
            raise ValueError("distance must not be NaN")
        d = max(distance_m, 0.0)
        if d < self.d_crit_m:
            return self.a + self.b * math.sqrt(d)
        return self.c + self.e * d


# London car calibration: LFB first pumps arrive in a median 296 s over a median 1.38 km
# straight line, including 60-90 s turnout. Police cars are usually already mobile, so a
# shorter mobilisation; targets ~270 s at 1.4 km and ~420 s at 3 km, i.e. ~10.7 m/s
# (38 km/h) marginal speed, which fits blue-light driving in London traffic.
_CAR_MOBILISE_S = 60.0
_CAR_CRUISE_MPS = 10.67
_CAR_ACCEL = _CAR_CRUISE_MPS / (138.75 - _CAR_MOBILISE_S)

DEFAULT_PARAMS: Mapping[str, KolesarParams] = {
    "response_car": KolesarParams.from_vehicle(_CAR_MOBILISE_S, _CAR_ACCEL, _CAR_CRUISE_MPS),
    # Advanced drivers in faster cars.
    "armed_response": KolesarParams.from_vehicle(60.0, _CAR_ACCEL * 1.1, 11.5),
    "traffic": KolesarParams.from_vehicle(60.0, _CAR_ACCEL * 1.2, 12.5),
    # Getting the dog loaded; a van.
    "dog": KolesarParams.from_vehicle(90.0, _CAR_ACCEL, 10.0),
    # Crewed carriers: more people to embark, heavier vehicle.
    "public_order": KolesarParams.from_vehicle(120.0, _CAR_ACCEL * 0.85, 9.5),
    # Detectives are seldom on blue lights and often have to leave an office.
    "cid": KolesarParams.from_vehicle(180.0, _CAR_ACCEL * 0.8, 8.0),
    # Walking pace, no acceleration phase.
    "foot": KolesarParams(a=30.0, b=0.0, c=30.0, e=1.0 / 1.4, d_crit_m=0.0),
}


# (a, b, c, e, d_crit_m) of a `KolesarParams`.
Coefficients = tuple[float, float, float, float, float]

_TABLE_STEP_M = 10.0
_TABLE_STEPS = 10_000  # 100 km


class KolesarEta:
    """Per-unit-type Kolesar model; unknown unit types use the `fallback` type's params."""

    def __init__(
        self,
        params: Mapping[str, KolesarParams] | None = None,
        fallback: str = "response_car",
    ) -> None:
        # Overrides merge into the defaults so configuring one type keeps the others.
        self.params: dict[str, KolesarParams] = {**DEFAULT_PARAMS, **(params or {})}
        if fallback not in self.params:
            raise ValueError(f"fallback unit type {fallback!r} has no params")
        self.fallback = fallback
        self._fallback_params = self.params[fallback]
        self._all = tuple(self.params.values())
        self._coefficients = {
            name: (p.a, p.b, p.c, p.e, p.d_crit_m) for name, p in self.params.items()
        }
        # min_eta_s is asked for every candidate of every search: a table of the lower
        # envelope, read at the step below the distance (a lower bound, as the envelope
        # never decreases), answers in O(1).
        self._table = [self._min_exact(i * _TABLE_STEP_M) for i in range(_TABLE_STEPS)]

    @classmethod
    def with_params(
        cls, params: Mapping[str, KolesarParams], fallback: str = "response_car"
    ) -> KolesarEta:
        """The defaults, with these params overriding the unit types they name; a type
        with no default is not one the service dispatches, so it is left out (see
        `unknown_types`), and cannot lower `min_eta_s` for the real ones."""
        known = {name: p for name, p in params.items() if name in DEFAULT_PARAMS}
        return cls(known, fallback)

    def eta_s(self, distance_m: float, unit_type: str) -> float:
        return self.params.get(unit_type, self._fallback_params).eta_s(distance_m)

    def coefficients(self) -> tuple[Mapping[str, Coefficients], Coefficients]:
        """(a, b, c, e, d_crit_m) of each unit type, and the fallback's, for a hot loop
        that evaluates `eta_s` inline: for a distance d >= 0 it is ``a + b * sqrt(d)`` if
        ``d < d_crit_m``, else ``c + e * d``, the very same floats."""
        return self._coefficients, self._coefficients[self.fallback]

    def envelope(self) -> tuple[Sequence[float], float]:
        """The table behind `min_eta_s`, and its step in metres: entry i
        is the least ETA of any unit type at i * step metres, and never decreases."""
        return self._table, _TABLE_STEP_M

    def min_eta_s(self, distance_m: float) -> float:
        step = int(distance_m / _TABLE_STEP_M) if distance_m > 0 else 0
        if step < _TABLE_STEPS:
            return self._table[step]
        return self._min_exact(distance_m)

    def _min_exact(self, distance_m: float) -> float:
        # The fallback is one of `params`, so this also bounds unknown unit types.
        return min(p.eta_s(distance_m) for p in self._all)


def unknown_types(params: Mapping[str, KolesarParams]) -> list[str]:
    """The unit types of `params` that `KolesarEta.with_params` ignores."""
    return sorted(name for name in params if name not in DEFAULT_PARAMS)


_PARAM_FIELDS = ("a", "b", "c", "e", "d_crit_m")


def params_from_document(doc: Any) -> dict[str, KolesarParams]:
    """The unit types' params in a `cad eta calibrate` file (already parsed JSON).

    The curve's own coefficients (a, b, c, e, d_crit_m) are read, so a hand-written file
    works too; `KolesarParams` refuses negative values and a drop at d_crit.
    Raises ValueError naming what is wrong.
    """
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("model") != "kolesar":
        raise ValueError(f'"model" must be "kolesar", got {doc.get("model")!r}')
    types = doc.get("unit_types")
    if not isinstance(types, dict) or not types:
        raise ValueError('"unit_types" must be a non-empty object of unit type -> params')
    out: dict[str, KolesarParams] = {}
    for name, entry in types.items():
        if not isinstance(entry, dict):
            raise ValueError(f"unit_types.{name}: not an object")
        values: dict[str, float] = {}
        for key in _PARAM_FIELDS:
            v = entry.get(key)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"unit_types.{name}.{key}: a number is required, got {v!r}")
            values[key] = float(v)
        try:
            out[str(name)] = KolesarParams(**values)
        except ValueError as exc:
            raise ValueError(f"unit_types.{name}: {exc}") from None
    return out


def eta_for(model: EtaModel, distance_m: float, unit_type: str) -> int:
    """ETA in whole seconds, rounded half up."""
    return math.floor(model.eta_s(distance_m, unit_type) + 0.5)
