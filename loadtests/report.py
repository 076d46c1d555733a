"""The load-test report: locust's CSVs plus what PostgreSQL says happened.

report.json (everything), report.md (one screen), throughput_latency.png.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from loadtests import lostcalls
from loadtests.sources import percentile


@dataclass
class RunFiles:
    out_dir: Path
    csv_prefix: Path
    ack_file: Path


def _num(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_stats(prefix: Path) -> list[dict[str, Any]]:
    path = Path(f"{prefix}_stats.csv")
    if not path.exists():
        return []
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            rows.append(
                {
                    "type": row["Type"],
                    "name": row["Name"],
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "rps": _num(row["Requests/s"]),
                    "p50_ms": _num(row["50%"]),
                    "p95_ms": _num(row["95%"]),
                    "p99_ms": _num(row["99%"]),
                    "max_ms": _num(row["Max Response Time"]),
                }
            )
    return rows


def read_failures(prefix: Path) -> list[dict[str, Any]]:
    path = Path(f"{prefix}_failures.csv")
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [
            {
                "method": r["Method"],
                "name": r["Name"],
                "error": r["Error"][:300],
                "count": int(r["Occurrences"]),
            }
            for r in csv.DictReader(f)
        ]


def read_history(prefix: Path) -> list[dict[str, float]]:
    path = Path(f"{prefix}_stats_history.csv")
    if not path.exists():
        return []
    out = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] != "Aggregated":
                continue
            out.append(
                {
                    "t": float(row["Timestamp"]),
                    "users": float(row["User Count"]),
                    "rps": _num(row["Requests/s"]) or 0.0,
                    "fails": _num(row["Failures/s"]) or 0.0,
                    "p50": _num(row["50%"]) or 0.0,
                    "p95": _num(row["95%"]) or 0.0,
                    "p99": _num(row["99%"]) or 0.0,
                }
            )
    return out


async def dispatch_delays(conn: asyncpg.Connection, since: datetime) -> dict[str, Any]:
    """I-grade: incident.created → first unit.assigned, from the event log."""
    rows = await conn.fetch(
        """
        SELECT c.incident_id,
               EXTRACT(EPOCH FROM min(a.at) - c.at) AS delay_s
        FROM events c
        LEFT JOIN events a ON a.incident_id = c.incident_id AND a.type = 'unit.assigned'
        WHERE c.type = 'incident.created' AND c.data->>'grade' = 'I' AND c.at >= $1
        GROUP BY c.incident_id, c.at
        """,
        since,
    )
    delays = [float(r["delay_s"]) for r in rows if r["delay_s"] is not None]
    return {
        "incidents": len(rows),
        "assigned": len(delays),
        "never_assigned": len(rows) - len(delays),
        "p50_s": _round(percentile(delays, 50), 3),
        "p90_s": _round(percentile(delays, 90), 3),
        "p99_s": _round(percentile(delays, 99), 3),
        "max_s": _round(max(delays) if delays else None, 3),
    }


async def db_counts(conn: asyncpg.Connection, since: datetime) -> dict[str, Any]:
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM calls WHERE created_at >= $1) AS calls,
               (SELECT count(*) FROM incidents WHERE created_at >= $1) AS incidents,
               (SELECT count(*) FROM events WHERE at >= $1) AS events,
               (SELECT count(*) FROM assignments WHERE dispatched_at >= $1) AS assignments
        """,
        since,
    )
    grades = await conn.fetch(
        "SELECT grade, count(*) AS n FROM incidents WHERE created_at >= $1 GROUP BY grade ORDER BY grade",
        since,
    )
    return {**dict(row), "incidents_by_grade": {r["grade"]: r["n"] for r in grades}}


def _round(v: float | None, nd: int = 1) -> float | None:
    return None if v is None else round(v, nd)


def plot(history: list[dict[str, float]], path: Path) -> bool:
    if not history:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = history[0]["t"]
    t = [h["t"] - t0 for h in history]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    ax1.plot(t, [h["rps"] for h in history], label="requests/s")
    ax1.plot(t, [h["fails"] for h in history], label="failures/s", color="red")
    ax1b = ax1.twinx()
    ax1b.plot(t, [h["users"] for h in history], label="users", color="grey", linestyle=":")
    ax1b.set_ylabel("users")
    ax1.set_ylabel("per second")
    ax1.legend(loc="upper left")
    ax1.set_title("Throughput (all endpoints and WS events)")
    ax2.plot(t, [h["p50"] for h in history], label="p50")
    ax2.plot(t, [h["p95"] for h in history], label="p95")
    ax2.plot(t, [h["p99"] for h in history], label="p99")
    ax2.set_ylabel("ms")
    ax2.set_xlabel("seconds into the run")
    ax2.legend(loc="upper left")
    ax2.set_title("Latency (rolling, aggregated)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


async def build(
    files: RunFiles, db_url: str, since: datetime, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write report.json / report.md / throughput_latency.png; return the report."""
    files.out_dir.mkdir(parents=True, exist_ok=True)
    stats = read_stats(files.csv_prefix)
    conn = await asyncpg.connect(db_url)
    try:
        lost = await lostcalls.check(conn, lostcalls.read_acks(files.ack_file))
        delays = await dispatch_delays(conn, since)
        counts = await db_counts(conn, since)
    finally:
        await conn.close()
    endpoints = [s for s in stats if s["name"] != "Aggregated"]
    total = next((s for s in stats if s["name"] == "Aggregated"), None)
    lag = next((s for s in stats if s["type"] == "WS" and s["name"] == "event_lag"), None)
    calls = [s for s in stats if s["type"] == "POST" and s["name"].startswith("/api/calls")]
    report: dict[str, Any] = {
        "run": meta,
        "endpoints": endpoints,
        "total": total,
        "failures": read_failures(files.csv_prefix),
        "event_lag_ms": lag,
        "calls_acknowledged": lost.acknowledged,
        "call_rate_per_s": sum(s["rps"] or 0 for s in calls),
        "dispatch_delay_I": delays,
        "database": counts,
        "lost_calls": lost.as_dict(),
    }
    report["plot"] = (
        "throughput_latency.png"
        if plot(read_history(files.csv_prefix), files.out_dir / "throughput_latency.png")
        else None
    )
    (files.out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (files.out_dir / "report.md").write_text(markdown(report))
    return report


def markdown(r: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "–" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))

    run = r["run"]
    lines = [
        f"# Load test {run.get('started', '')}",
        "",
        f"Target {run.get('url', '')}, {f(run.get('duration_s'))} s, profile "
        f"{run.get('profile', '')}, peak handlers {f(run.get('peak_handlers'))}, "
        f"locust processes {f(run.get('locust_processes'))}, server workers "
        f"{f(run.get('server_workers'))}.",
        "",
        "## Requests",
        "",
        "| type | endpoint | requests | failures | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in r["endpoints"] + ([r["total"]] if r["total"] else []):
        lines.append(
            f"| {s['type']} | {s['name']} | {s['requests']} | {s['failures']} | {f(_round(s['rps'], 2))} "
            f"| {f(s['p50_ms'])} | {f(s['p95_ms'])} | {f(s['p99_ms'])} |"
        )
    lag = r["event_lag_ms"] or {}
    d = r["dispatch_delay_I"]
    lost = r["lost_calls"]
    lines += [
        "",
        "## What the system did",
        "",
        f"- WebSocket event lag (receive − event `at`): p50 {f(lag.get('p50_ms'))} ms, "
        f"p95 {f(lag.get('p95_ms'))} ms, p99 {f(lag.get('p99_ms'))} ms over {f(lag.get('requests'))} events.",
        f"- I-grade dispatch delay (incident.created → first unit.assigned): {d['assigned']} of "
        f"{d['incidents']} assigned; p50 {f(d['p50_s'])} s, p90 {f(d['p90_s'])} s, "
        f"p99 {f(d['p99_s'])} s; {d['never_assigned']} never assigned during the run "
        "(fleet exhausted or run ended).",
        f"- Database during the run: {r['database']}.",
        "",
        "## Lost-call check",
        "",
        f"**{'PASS' if lost['ok'] else 'FAIL'}**: {lost['acknowledged']} calls acknowledged "
        f"with 201 ({lost['distinct_keys']} Idempotency-Keys); missing from PostgreSQL: "
        f"{lost['missing_count']}; keys acknowledged with two call ids: {len(lost['acked_twice'])}; "
        f"keys that produced two calls: {len(lost['duplicate_calls'])}, two incidents: "
        f"{len(lost['duplicate_incidents'])}.",
    ]
    if r["failures"]:
        lines += ["", "## Failures", ""]
        lines += [
            f"- {x['count']}× {x['method']} {x['name']}: {x['error']}" for x in r["failures"][:20]
        ]
    if r.get("plot"):
        lines += ["", f"![throughput and latency]({r['plot']})"]
    return "\n".join(lines) + "\n"
