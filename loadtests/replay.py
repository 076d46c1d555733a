"""`cad replay FILE`: send a real call log to a running API at N× its real pace.

    cad replay ../shared/data/montgomery_911_sample.csv --start "2018-11-15 13:00" \
        --limit 302 --speed 60 --url http://127.0.0.1:8000

Montgomery County 911 CSV (affine-mapped into London) or the LFB dwelling-fire GeoJSON
(incidents only). Each call carries its own Idempotency-Key; a dropped connection is
retried with the same key. Gaps longer than `max_gap_s` of wall time are shortened so a
sparse log does not idle for hours; the summary says how many.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from loadtests.session_auth import SessionAuth
from loadtests.sources import LogCall, SourceError, percentile, read_log, window


@dataclass
class ReplayConfig:
    file: str
    url: str = "http://127.0.0.1:8000"
    speed: float = 60.0
    multiply: int = 1
    start: str | None = None
    limit: int = 0
    username: str = "handler"
    password: str = "handler-999"
    max_gap_s: float = 10.0
    concurrency: int = 200
    progress: bool = True
    ack_file: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def _fail(message: str) -> None:
    print(f"cad replay: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_calls(cfg: ReplayConfig) -> list[LogCall]:
    from gis.areas import AreaSet

    area = AreaSet.london_default()
    try:
        start = datetime.fromisoformat(cfg.start) if cfg.start else None
    except ValueError:
        _fail(f"--start {cfg.start!r}: expected an ISO time such as 2018-11-15T13:00")
        raise
    try:
        calls = read_log(cfg.file, inside=area.contains)
    except SourceError as exc:
        _fail(str(exc))
        raise
    return window(calls, start, cfg.limit)


def plan(calls: list[LogCall], cfg: ReplayConfig) -> tuple[list[tuple[float, LogCall, int]], int]:
    """Send times in seconds from the start; long idle gaps shortened (counted)."""
    out: list[tuple[float, LogCall, int]] = []
    t = 0.0
    shortened = 0
    prev = calls[0].at if calls else None
    for call in calls:
        assert prev is not None
        gap = (call.at - prev).total_seconds() / max(cfg.speed, 1e-9)
        if gap > cfg.max_gap_s:
            gap = cfg.max_gap_s
            shortened += 1
        t += gap
        prev = call.at
        for copy in range(max(cfg.multiply, 1)):
            out.append((t, call, copy))
    return out, shortened


class Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.last = 0.0

    def show(self, done: int, ok: int, errors: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < 0.2:
            return
        self.last = now
        width = 30
        filled = int(width * done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(f"\r[{bar}] {done}/{self.total} 201: {ok} errors: {errors}")
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def run_replay(cfg: ReplayConfig) -> dict[str, Any]:
    calls = load_calls(cfg)
    if not calls:
        _fail(f"{cfg.file}: no calls at or after {cfg.start}")
    schedule, shortened = plan(calls, cfg)
    rng = random.Random(7)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    retries = 0
    done = 0
    acks: list[dict[str, Any]] = []
    progress = Progress(len(schedule), cfg.progress)
    limits = httpx.Limits(
        max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency
    )
    async with httpx.AsyncClient(base_url=cfg.url, timeout=30.0, limits=limits) as client:
        try:
            r = await client.post(
                "/api/auth/token", data={"username": cfg.username, "password": cfg.password}
            )
        except httpx.HTTPError as exc:
            _fail(f"cannot reach {cfg.url} ({type(exc).__name__}: {exc})")
            raise
        if r.status_code != 200:
            _fail(f"sign-in as {cfg.username} refused: {r.status_code} {r.text[:200]}")
        auth = SessionAuth(cfg.username, cfg.password)
        auth.take(r)
        # A long replay outlives an access token: the client renews it on a 401.
        client.auth = auth
        gate = asyncio.Semaphore(cfg.concurrency)

        async def send(call: LogCall, copy: int) -> None:
            nonlocal retries, done
            key = uuid.uuid4().hex
            body = call.body(tag=key)
            if copy:
                # Copies land a street or two apart, like several callers about one event.
                loc = body["location"]
                loc["lat"] = round(loc["lat"] + rng.gauss(0, 0.0005), 6)
                loc["lng"] = round(loc["lng"] + rng.gauss(0, 0.0008), 6)
            async with gate:
                for attempt in range(4):
                    started = time.perf_counter()
                    try:
                        resp = await client.post(
                            "/api/calls", json=body, headers={"Idempotency-Key": key}
                        )
                    except httpx.TransportError:
                        retries += 1
                        await asyncio.sleep(0.2 * (attempt + 1))
                        continue
                    latencies.append((time.perf_counter() - started) * 1000)
                    if resp.status_code in (502, 503, 504) and attempt < 3:
                        retries += 1
                        await asyncio.sleep(0.2 * (attempt + 1))
                        continue
                    statuses[str(resp.status_code)] += 1
                    if resp.status_code == 201:
                        data = resp.json()
                        acks.append({"key": key, "call_id": data["call"]["id"]})
                    break
                else:
                    statuses["connection_error"] += 1
            done += 1
            progress.show(done, statuses["201"], done - statuses["201"])

        started = time.monotonic()
        tasks = []
        for offset, call, copy in schedule:
            delay = started + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(call, copy)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
    progress.show(done, statuses["201"], done - statuses["201"], final=True)
    if cfg.ack_file:
        await asyncio.to_thread(_append_acks, cfg.ack_file, acks)
    log_span = (calls[-1].at - calls[0].at).total_seconds()
    summary: dict[str, Any] = {
        "file": cfg.file,
        "log_window": [calls[0].at.isoformat(), calls[-1].at.isoformat()],
        "calls_in_window": len(calls),
        "sent": len(schedule),
        "created_201": statuses["201"],
        "errors_by_status": {k: v for k, v in sorted(statuses.items()) if k != "201"},
        "retries": retries,
        "latency_ms": {
            "p50": _r(percentile(latencies, 50)),
            "p95": _r(percentile(latencies, 95)),
            "p99": _r(percentile(latencies, 99)),
            "max": _r(max(latencies) if latencies else None),
        },
        "duration_s": round(elapsed, 2),
        "achieved_rate_per_s": round(len(schedule) / elapsed, 2) if elapsed > 0 else None,
        "log_rate_per_hour": round(len(calls) / log_span * 3600, 1) if log_span > 0 else None,
        "speed": cfg.speed,
        "multiply": cfg.multiply,
        "idle_gaps_shortened": shortened,
    }
    _print_summary(summary)
    cfg.stats.update(summary)
    return summary


def _append_acks(path: str, acks: list[dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for ack in acks:
            f.write(json.dumps(ack) + "\n")


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _print_summary(s: dict[str, Any]) -> None:
    lat = s["latency_ms"]
    errors = ", ".join(f"{k}: {v}" for k, v in s["errors_by_status"].items()) or "none"
    lines = [
        f"replay of {s['file']}",
        f"  log window      {s['log_window'][0]} .. {s['log_window'][1]} ({s['calls_in_window']} calls)",
        f"  speed           {s['speed']}x, each call x{s['multiply']}"
        + (f", {s['idle_gaps_shortened']} idle gaps shortened" if s["idle_gaps_shortened"] else ""),
        f"  sent            {s['sent']} in {s['duration_s']} s ({s['achieved_rate_per_s']}/s)",
        f"  201 created     {s['created_201']}",
        f"  errors          {errors} (retries: {s['retries']})",
        f"  latency ms      p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}",
    ]
    print("\n".join(lines), file=sys.stderr)
