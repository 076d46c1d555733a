"""One short real locust run against a real server, then the report it leads to."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime

from cad.config import Settings
from loadtests import report as report_mod
from loadtests.replay import ReplayConfig, run_replay
from tests.conftest import ARTIFACTS, ROOT, Server, shared_file


async def test_short_locust_run_has_no_failures_and_writes_a_report(
    server: Server, settings: Settings, tmp_path
) -> None:
    out = tmp_path / "report"
    out.mkdir()
    acks, prefix = out / "acks.jsonl", out / "locust"
    since = datetime.now(UTC)
    env = {**server.env, "CAD_LT_CONSOLES": "1", "CAD_LT_CALL_INTERVAL": "0.3"}
    cmd = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
        "--headless", "--host", server.url, "--run-time", "10s", "--stop-timeout", "5",
        "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
        "--ack-file", str(acks), "--peak-handlers", "2", "--load-profile", "flat",
    ]  # fmt: skip
    result = await asyncio.to_thread(
        subprocess.run, cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "locust-short-run.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr[-3000:]

    rep = await report_mod.build(
        report_mod.RunFiles(out, prefix, acks), settings.database_url, since, {"url": server.url}
    )
    assert (out / "report.md").read_text().startswith("# Load test")
    assert json.loads((out / "report.json").read_text())["lost_calls"]["ok"] is True
    assert rep["total"]["failures"] == 0, rep["failures"]
    assert rep["calls_acknowledged"] > 0
    names = {(e["type"], e["name"]) for e in rep["endpoints"]}
    assert ("POST", "/api/calls") in names
    assert ("WS", "event_lag") in names
    assert ("POST", "/api/units/positions") in names
    assert rep["database"]["calls"] >= rep["calls_acknowledged"]


async def test_cad_replay_sends_a_slice_of_the_surge(server: Server) -> None:
    summary = await run_replay(
        ReplayConfig(
            file=str(shared_file("montgomery_911_sample.csv")),
            url=server.url,
            speed=3600.0,
            start="2018-11-15T13:00",
            limit=25,
            progress=False,
        )
    )
    assert summary["sent"] == 25
    assert summary["created_201"] == 25, summary["errors_by_status"]
    assert summary["errors_by_status"] == {}
    assert summary["latency_ms"]["p99"] is not None
