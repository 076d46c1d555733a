"""What a study run shows: per-grade delays against the scheme's targets, the pending
queue over time and unit utilisation; written as results.json, report.md and PNG plots."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cad.study.sim import SimResult

QUEUE_STEP_S = 300


def _pct(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-q * len(v) // 100)) - 1))
    return round(v[k], 1)


def queue_series(result: SimResult, step_s: int = QUEUE_STEP_S) -> list[dict[str, Any]]:
    """Pending incidents per grade at each step until the last event (a step function
    sampled at its value just after each instant)."""
    out: list[dict[str, Any]] = []
    log = result.queue
    j = -1
    t = 0.0
    while t <= result.end_s:
        while j + 1 < len(log) and log[j + 1][0] <= t:
            j += 1
        counts = log[j][1] if j >= 0 else {}
        out.append({"t_s": t, **{g: counts.get(g, 0) for g in result.grades}})
        t += step_s
    return out


def summarise(result: SimResult) -> dict[str, Any]:
    per_grade: dict[str, Any] = {}
    for code in result.grades:
        grade = result.scheme[code]
        incs = [i for i in result.incidents if i.grade == code]
        target = grade.target_s if grade.target_s is not None else grade.appointment_s
        entry: dict[str, Any] = {
            "name": grade.name,
            "calls": len(incs),
            "target_s": target,
            "target_kind": "attendance" if grade.target_s is not None else "appointment",
        }
        if grade.closes_on_creation:
            entry["closed_without_dispatch"] = sum(1 for i in incs if i.dispatches == 0)
            per_grade[code] = entry
            continue
        dispatch = [
            i.first_dispatch_s - i.call.received_s for i in incs if i.first_dispatch_s is not None
        ]
        scene = [
            i.first_on_scene_s - i.call.received_s for i in incs if i.first_on_scene_s is not None
        ]
        entry.update(
            {
                "dispatched": len(dispatch),
                "never_dispatched": len(incs) - len(dispatch),
                "received_to_dispatch_s": {"median": _pct(dispatch, 50), "p90": _pct(dispatch, 90)},
                "received_to_on_scene_s": {"median": _pct(scene, 50), "p90": _pct(scene, 90)},
                "on_scene_within_target_pct": (
                    round(100 * sum(1 for s in scene if s <= target) / len(incs), 1)
                    if target is not None and incs
                    else None
                ),
                "diverted_away": sum(i.diverted_away for i in incs),
            }
        )
        per_grade[code] = entry
    span = max(result.horizon_s, 1.0)
    by_type: dict[str, list[float]] = {}
    by_area: dict[str, list[float]] = {}
    for su in result.units:
        duty = (
            sum(max(0.0, min(off, span) - min(on, span)) for on, off in su.on_duty)
            if su.on_duty
            else span
        )
        for key, bucket in ((su.state.unit_type, by_type), (su.area_code or "none", by_area)):
            b = bucket.setdefault(key, [0.0, 0.0, 0.0])
            b[0] += su.busy_s
            b[1] += duty
            b[2] += 1

    def util(bucket: Mapping[str, list[float]]) -> dict[str, Any]:
        return {
            k: {
                "units": int(v[2]),
                "utilisation_pct": round(100 * v[0] / v[1], 1) if v[1] else None,
            }
            for k, v in sorted(bucket.items())
        }

    series = queue_series(result)
    totals = [sum(row[g] for g in result.grades) for row in series]
    return {
        "start": result.start.isoformat(),
        "span_s": result.horizon_s,
        "end_s": result.end_s,
        "calls": len(result.incidents),
        "units": len(result.units),
        "grades": per_grade,
        "queue": {
            "step_s": QUEUE_STEP_S,
            "max_pending": max(totals, default=0),
            "mean_pending": round(sum(totals) / len(totals), 2) if totals else 0,
            "series": series,
        },
        "utilisation": {"by_unit_type": util(by_type), "by_area": util(by_area)},
    }


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 60:.1f} min"


def _markdown(summary: Mapping[str, Any], meta: Mapping[str, Any], plots: Sequence[str]) -> str:
    lines = [f"# Study: {meta.get('log', '?')} log", ""]
    for k, v in meta.items():
        lines.append(f"- {k}: {v}")
    lines += [
        f"- calls: {summary['calls']}, units: {summary['units']}, span: "
        f"{summary['span_s'] / 3600:.1f} h (last event {summary['end_s'] / 3600:.1f} h)",
        "",
        "## Per grade",
        "",
        "| grade | calls | dispatched | to dispatch median | p90 | to scene median | p90 "
        "| target | on scene within target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for code, g in summary["grades"].items():
        if "closed_without_dispatch" in g:
            lines.append(
                f"| {code} {g['name']} | {g['calls']} | closed without dispatch: "
                f"{g['closed_without_dispatch']} | | | | | | |"
            )
            continue
        target = f"{g['target_s'] / 60:.0f} min ({g['target_kind']})" if g["target_s"] else "-"
        within = g["on_scene_within_target_pct"]
        lines.append(
            f"| {code} {g['name']} | {g['calls']} | {g['dispatched']} "
            f"| {_fmt(g['received_to_dispatch_s']['median'])} "
            f"| {_fmt(g['received_to_dispatch_s']['p90'])} "
            f"| {_fmt(g['received_to_on_scene_s']['median'])} "
            f"| {_fmt(g['received_to_on_scene_s']['p90'])} | {target} "
            f"| {'-' if within is None else f'{within}%'} |"
        )
    q = summary["queue"]
    lines += ["", "## Pending queue", "", f"max {q['max_pending']}, mean {q['mean_pending']}"]
    lines += ["", "## Utilisation by unit type", "", "| type | units | busy |", "|---|---|---|"]
    for k, v in summary["utilisation"]["by_unit_type"].items():
        lines.append(f"| {k} | {v['units']} | {v['utilisation_pct']}% |")
    lines += ["", "## Utilisation by area", "", "| area | units | busy |", "|---|---|---|"]
    for k, v in summary["utilisation"]["by_area"].items():
        lines.append(f"| {k} | {v['units']} | {v['utilisation_pct']}% |")
    lines += [
        "",
        "## Method",
        "",
        "Calls are graded by the grading rules, auto-dispatched grades planned by the "
        "engine's own `plan_actions` as soon as they are pending, Extended calls join the "
        "queue after the appointment delay, Referred calls close at once. Units travel by "
        "the ETA model, stay on scene for a lognormal time per incident type "
        "(cad/study/data/on_scene.json), then return to base (unavailable until there). "
        "Delays run from the call's receipt (for Extended calls too, so they include the "
        "appointment delay); 'within target' is the share of all the grade's calls on scene "
        "within the scheme's target_s (appointment_s for Extended), so a call never reached "
        "counts as missed. Utilisation is time committed (dispatch to back at base) over "
        "time on duty, within the log's span. Positions are mapped onto London by an affine "
        "map of a fixed box around the log's area onto London's bounding box; a unit is "
        "planned from where it was sent (no movement along the route).",
        "",
    ]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _plots(summary: Mapping[str, Any], result: SimResult, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    series = summary["queue"]["series"]
    fig, ax = plt.subplots(figsize=(10, 4))
    hours = [row["t_s"] / 3600 for row in series]
    for code in result.grades:
        if not result.scheme[code].closes_on_creation:
            ax.step(hours, [row[code] for row in series], where="post", label=code)
    ax.set_xlabel("hours since first call")
    ax.set_ylabel("pending incidents")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "queue.png", dpi=90)
    plt.close(fig)
    names.append("queue.png")

    fig, ax = plt.subplots(figsize=(8, 4))
    for code in result.grades:
        grade = result.scheme[code]
        if grade.closes_on_creation:
            continue
        delays = sorted(
            (i.first_on_scene_s - i.call.received_s) / 60
            for i in result.incidents
            if i.grade == code and i.first_on_scene_s is not None
        )
        if delays:
            ax.plot(delays, [(k + 1) / len(delays) for k in range(len(delays))], label=code)
    ax.set_xscale("log")
    ax.set_xlabel("received to on scene (min)")
    ax.set_ylabel("share of incidents")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "on_scene_cdf.png", dpi=90)
    plt.close(fig)
    names.append("on_scene_cdf.png")

    fig, ax = plt.subplots(figsize=(8, 4))
    util = summary["utilisation"]["by_unit_type"]
    ax.bar(list(util), [v["utilisation_pct"] or 0 for v in util.values()])
    ax.set_ylabel("utilisation %")
    fig.tight_layout()
    fig.savefig(out / "utilisation.png", dpi=90)
    plt.close(fig)
    names.append("utilisation.png")
    return names


def write_report(result: SimResult, out: Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(result)
    plots = _plots(summary, result, out)
    (out / "results.json").write_text(
        json.dumps({"meta": dict(meta), **summary}, indent=2) + "\n", encoding="utf-8"
    )
    (out / "report.md").write_text(_markdown(summary, meta, plots), encoding="utf-8")
    return summary
