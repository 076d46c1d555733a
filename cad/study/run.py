"""`cad study`: a log, a fleet and the service's own rules, wired into one run."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from cad.grading import load_catalogue, load_rules, load_scheme
from cad.state import plans_from_catalogue
from cad.study.report import write_report
from cad.study.sim import OnSceneModel, Simulation, StudyConfig
from cad.study.sources import (
    MONTGOMERY,
    SF_WEEK,
    CallLog,
    demo_units,
    read_fleet,
    read_montgomery,
    read_sf,
)
from gis.areas import AreaSet
from gis.eta import KolesarEta

LOGS = {"sf": SF_WEEK, "montgomery": MONTGOMERY}


def progress_bar(done: int, total: int) -> None:
    """A plain bar on stderr (no tqdm here), redrawn at each whole percent."""
    pct = 100 * done // max(total, 1)
    if done == total or pct != getattr(progress_bar, "_last", -1):
        progress_bar._last = pct  # type: ignore[attr-defined]
        bar = "#" * (pct // 4)
        sys.stderr.write(f"\rsimulating [{bar:<25}] {pct:3d}% {done}/{total} calls")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run_study(
    *,
    log: str = "sf",
    log_file: Path | None = None,
    fleet_file: Path | None = None,
    seed: int = 0,
    out: Path = Path("study-out"),
    hours: float | None = None,
    e_delay_s: float = 7200.0,
    progress: bool = True,
) -> dict[str, Any]:
    areas = AreaSet.london_default()
    path = log_file or LOGS[log]
    calls: CallLog = (
        read_montgomery(path, areas, hours=hours)
        if log == "montgomery"
        else read_sf(path, areas, hours=hours)
    )
    fleet = read_fleet(fleet_file, areas) if fleet_file else demo_units(areas)
    catalogue = load_catalogue()
    config = StudyConfig(seed=seed, e_delay_s=e_delay_s)
    sim = Simulation(
        calls.calls,
        fleet,
        start=calls.start,
        catalogue=catalogue,
        scheme=load_scheme(),
        rules=load_rules(),
        plans=plans_from_catalogue(dict(catalogue), config.emergency_units),
        eta=KolesarEta(),
        projector=areas.projector,
        on_scene=OnSceneModel.load(),
        config=config,
    )
    started = time.monotonic()
    result = sim.run(progress_bar if progress else None)
    meta = {
        "log": log,
        "log_file": path.name,
        "fleet": fleet_file.name if fleet_file else "demo fleet (cad/seed.py)",
        "seed": seed,
        "hours": hours if hours is not None else "all",
        "e_delay_s": e_delay_s,
    }
    summary = write_report(result, out, meta)
    summary["simulated_in_s"] = round(time.monotonic() - started, 1)
    return summary
