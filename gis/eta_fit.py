"""Fitting the Kolesar ETA model to observed attendances (`cad eta calibrate`).

The fit is over the vehicle parameters (mobilisation, effective acceleration, cruise
speed): `KolesarParams.from_vehicle` turns any positive triple into a curve that is
continuous and non-decreasing, so no fitted curve can break the searches that rely on it.
The loss is the mean absolute error, which a few implausible records (a pump stood down
and re-sent, a grid reference on the wrong street) cannot drag far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gis.eta import KolesarParams

Array = npt.NDArray[np.float64]

# Effective accelerations absorb junctions and traffic (London cars ~0.14 m/s^2), cruise
# speeds span walking-in-traffic to motorway; wide enough that an edge hit means bad data.
ACCEL_BOUNDS = (0.005, 5.0)
CRUISE_BOUNDS = (1.0, 45.0)
_GRID = 40
_ZOOMS = 6


@dataclass(frozen=True)
class VehicleFit:
    mobilise_s: float
    accel_mps2: float
    cruise_mps: float
    mae_s: float
    n: int

    @property
    def params(self) -> KolesarParams:
        return KolesarParams.from_vehicle(self.mobilise_s, self.accel_mps2, self.cruise_mps)


@dataclass(frozen=True)
class ErrorStats:
    """Errors of predicted minus observed seconds (negative: the model is optimistic)."""

    n: int
    median_signed_s: float
    mae_s: float
    p90_abs_s: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "median_signed_s": round(self.median_signed_s, 1),
            "mae_s": round(self.mae_s, 1),
            "p90_abs_s": round(self.p90_abs_s, 1),
        }


def predict(params: KolesarParams, distances_m: Array) -> Array:
    """`params.eta_s` over an array of distances."""
    d = np.maximum(np.asarray(distances_m, dtype=np.float64), 0.0)
    short = params.a + params.b * np.sqrt(d)
    long = params.c + params.e * d
    out: Array = np.where(d < params.d_crit_m, short, long)
    return out


def error_stats(predicted_s: Array, observed_s: Array) -> ErrorStats:
    """Median signed error, mean and 90th percentile (linear interpolation) absolute error."""
    err = np.asarray(predicted_s, dtype=np.float64) - np.asarray(observed_s, dtype=np.float64)
    if err.size == 0:
        return ErrorStats(0, math.nan, math.nan, math.nan)
    absolute = np.abs(err)
    return ErrorStats(
        n=int(err.size),
        median_signed_s=float(np.median(err)),
        mae_s=float(np.mean(absolute)),
        p90_abs_s=float(np.percentile(absolute, 90)),
    )


def holdout_split(
    n: int, test_fraction: float = 0.2, seed: int = 0
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Indices (fit, test): a seeded shuffle, the same for the same n, fraction and seed."""
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _travel(distances_m: Array, accel: Array, cruise: Array) -> Array:
    """Travel time (no mobilisation) for each (accel, cruise) row and each distance column."""
    acc = accel[:, None]
    v = cruise[:, None]
    d = distances_m[None, :]
    d_crit = v * v / acc
    out: Array = np.where(d < d_crit, 2.0 * np.sqrt(d / acc), v / acc + d / v)
    return out


def _best_on_grid(
    distances_m: Array, observed_s: Array, accels: Array, cruises: Array
) -> tuple[float, float, float, float]:
    """(loss, mobilise, accel, cruise) minimising the MAE over the grid.

    For fixed accel and cruise the MAE-optimal mobilisation is the median residual,
    clipped at zero (the loss is convex in it), so only two dimensions are searched.
    """
    acc_grid, cruise_grid = np.meshgrid(accels, cruises, indexing="ij")
    acc_flat, cruise_flat = acc_grid.ravel(), cruise_grid.ravel()
    # Bounded memory: about 4 M floats per chunk whatever the sample size.
    chunk = max(1, 4_000_000 // max(distances_m.size, 1))
    best = (math.inf, 0.0, 0.0, 0.0)
    for start in range(0, acc_flat.size, chunk):
        acc = acc_flat[start : start + chunk]
        cru = cruise_flat[start : start + chunk]
        residual = observed_s[None, :] - _travel(distances_m, acc, cru)
        mobilise = np.maximum(np.median(residual, axis=1), 0.0)
        loss = np.mean(np.abs(residual - mobilise[:, None]), axis=1)
        i = int(np.argmin(loss))
        if float(loss[i]) < best[0]:
            best = (float(loss[i]), float(mobilise[i]), float(acc[i]), float(cru[i]))
    return best


def fit_vehicle(
    distances_m: Array,
    observed_s: Array,
    accel_bounds: tuple[float, float] = ACCEL_BOUNDS,
    cruise_bounds: tuple[float, float] = CRUISE_BOUNDS,
) -> VehicleFit:
    """The vehicle (mobilise_s, accel, cruise) minimising the mean absolute error.

    A log-spaced grid, then repeated zooms around the best cell: deterministic, no
    starting guess to get wrong, and the bounds are hard constraints.
    """
    d = np.asarray(distances_m, dtype=np.float64)
    t = np.asarray(observed_s, dtype=np.float64)
    if d.shape != t.shape or d.ndim != 1:
        raise ValueError("distances and observed times must be 1-D arrays of one length")
    if d.size < 3:
        raise ValueError(f"need at least 3 observations to fit, got {d.size}")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(t))):
        raise ValueError("distances and observed times must be finite")
    lo_a, hi_a = math.log(accel_bounds[0]), math.log(accel_bounds[1])
    lo_v, hi_v = math.log(cruise_bounds[0]), math.log(cruise_bounds[1])
    best = (math.inf, 0.0, 0.0, 0.0)
    for _ in range(_ZOOMS):
        accels = np.exp(np.linspace(lo_a, hi_a, _GRID))
        cruises = np.exp(np.linspace(lo_v, hi_v, _GRID))
        found = _best_on_grid(d, t, accels, cruises)
        if found[0] <= best[0]:
            best = found
        # Zoom to two cells either side of the best point, inside the bounds.
        step_a = (hi_a - lo_a) / (_GRID - 1)
        step_v = (hi_v - lo_v) / (_GRID - 1)
        la, lv = math.log(best[2]), math.log(best[3])
        lo_a = max(math.log(accel_bounds[0]), la - 2 * step_a)
        hi_a = min(math.log(accel_bounds[1]), la + 2 * step_a)
        lo_v = max(math.log(cruise_bounds[0]), lv - 2 * step_v)
        hi_v = min(math.log(cruise_bounds[1]), lv + 2 * step_v)
    loss, mobilise, accel, cruise = best
    return VehicleFit(mobilise, accel, cruise, loss, int(d.size))


def params_document(fit: VehicleFit) -> dict[str, float]:
    """One unit type's entry in a params file (what `KolesarEta` reads back)."""
    p = fit.params
    return {
        "mobilise_s": round(fit.mobilise_s, 3),
        "accel_mps2": round(fit.accel_mps2, 6),
        "cruise_mps": round(fit.cruise_mps, 4),
        "a": p.a,
        "b": p.b,
        "c": p.c,
        "e": p.e,
        "d_crit_m": p.d_crit_m,
    }
