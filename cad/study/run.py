"""`cad study`: a log, a fleet and the service's own rules, wired into one run."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cad.grading import (
    Grade,
    IncidentType,
    Rule,
    load_catalogue,
    load_rules,
    load_scheme,
)
from cad.state import plans_from_catalogue
from cad.study.compare import compare_policies, find_fleet, write_fleet, write_policies
from cad.study.report import write_report
from cad.study.sim import OnSceneModel, SimResult, Simulation, StudyConfig
from cad.study.sources import (
    MONTGOMERY,
    SF_WEEK,
    CallLog,
    FleetUnit,
    demo_units,
    read_fleet,
    read_montgomery,
    read_sf,
    with_areas,
)
from dispatch.policy import DEFAULT_MARGIN_S, Policy
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


@dataclass(frozen=True)
class StudyInputs:
    """A log, a fleet and the service's own rules, ready to simulate many times."""

    log: str
    path: Path
    calls: CallLog
    fleet: list[FleetUnit]
    fleet_name: str
    catalogue: Mapping[str, IncidentType]
    scheme: Mapping[str, Grade]
    rules: Sequence[Rule]
    areas: AreaSet

    def simulation(
        self, config: StudyConfig, fleet: Sequence[FleetUnit] | None = None
    ) -> Simulation:
        return Simulation(
            self.calls.calls,
            self.fleet if fleet is None else fleet,
            start=self.calls.start,
            catalogue=self.catalogue,
            scheme=self.scheme,
            rules=self.rules,
            plans=plans_from_catalogue(dict(self.catalogue), config.emergency_units),
            eta=KolesarEta(),
            projector=self.areas.projector,
            on_scene=OnSceneModel.load(),
            config=config,
        )

    def meta(self, **extra: Any) -> dict[str, Any]:
        return {"log": self.log, "log_file": self.path.name, "fleet": self.fleet_name, **extra}


def load_inputs(
    *,
    log: str = "sf",
    log_file: Path | None = None,
    fleet_file: Path | None = None,
    hours: float | None = None,
) -> StudyInputs:
    areas = AreaSet.london_default()
    path = log_file or LOGS[log]
    calls: CallLog = (
        read_montgomery(path, areas, hours=hours)
        if log == "montgomery"
        else read_sf(path, areas, hours=hours)
    )
    calls = CallLog(calls.name, calls.start, with_areas(calls.calls, areas))
    fleet = read_fleet(fleet_file, areas) if fleet_file else demo_units(areas)
    return StudyInputs(
        log=log,
        path=path,
        calls=calls,
        fleet=fleet,
        fleet_name=fleet_file.name if fleet_file else "demo fleet (cad/seed.py)",
        catalogue=load_catalogue(),
        scheme=load_scheme(),
        rules=load_rules(),
        areas=areas,
    )


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
    inputs = load_inputs(log=log, log_file=log_file, fleet_file=fleet_file, hours=hours)
    sim = inputs.simulation(StudyConfig(seed=seed, e_delay_s=e_delay_s))
    started = time.monotonic()
    result = sim.run(progress_bar if progress else None)
    meta = inputs.meta(seed=seed, hours=hours if hours is not None else "all", e_delay_s=e_delay_s)
    summary = write_report(result, out, meta)
    summary["simulated_in_s"] = round(time.monotonic() - started, 1)
    return summary


def run_policies(
    *,
    policies: Sequence[Policy],
    seeds: int = 1,
    seed: int = 0,
    margin_s: int = DEFAULT_MARGIN_S,
    log: str = "sf",
    log_file: Path | None = None,
    fleet_file: Path | None = None,
    out: Path = Path("study-out"),
    hours: float | None = None,
    e_delay_s: float = 7200.0,
) -> dict[str, Any]:
    """Each policy over seeds seed..seed+seeds-1; policies.md and policies.json."""
    inputs = load_inputs(log=log, log_file=log_file, fleet_file=fleet_file, hours=hours)
    started = time.monotonic()

    def run(policy: Policy, s: int) -> SimResult:
        config = StudyConfig(seed=s, e_delay_s=e_delay_s, policy=policy, policy_margin_s=margin_s)
        sys.stderr.write(f"policy {policy.value}, seed {s}\n")
        return inputs.simulation(config).run()

    doc = compare_policies(run, policies, list(range(seed, seed + seeds)))
    meta = inputs.meta(
        hours=hours if hours is not None else "all",
        e_delay_s=e_delay_s,
        policy_margin_s=margin_s,
    )
    write_policies(doc, out, meta)
    doc["simulated_in_s"] = round(time.monotonic() - started, 1)
    return doc


def run_find_fleet(
    *,
    grade: str,
    target_pct: float,
    seed: int = 0,
    max_runs: int = 100,
    log: str = "sf",
    log_file: Path | None = None,
    fleet_file: Path | None = None,
    out: Path = Path("study-out"),
    hours: float | None = None,
    e_delay_s: float = 7200.0,
) -> dict[str, Any]:
    """The fewest response cars per area meeting the target; fleet.md and fleet.json."""
    inputs = load_inputs(log=log, log_file=log_file, fleet_file=fleet_file, hours=hours)
    if grade not in inputs.scheme:
        raise ValueError(f"unknown grade {grade!r}: one of {', '.join(inputs.scheme)}")
    config = StudyConfig(seed=seed, e_delay_s=e_delay_s)
    started = time.monotonic()

    def run(fleet: Sequence[FleetUnit]) -> SimResult:
        sys.stderr.write(f"\rfleet search: trying {len(fleet)} units   ")
        return inputs.simulation(config, fleet).run()

    doc = find_fleet(run, inputs.fleet, grade=grade, target_pct=target_pct, max_runs=max_runs)
    doc["area_names"] = {
        code: area.name
        for code in doc["start"]["counts"]
        if (area := inputs.areas.by_code(code)) is not None
    }
    sys.stderr.write("\n")
    meta = inputs.meta(seed=seed, hours=hours if hours is not None else "all")
    write_fleet(doc, out, meta)
    doc["simulated_in_s"] = round(time.monotonic() - started, 1)
    return doc
