"""`make loadtest`: a whole load test on its own database, ending in a report.

    python -m loadtests.run --duration 120 [--users 20] [--workers 1] [--profile seattle]

Creates a fresh database (cad_loadtest, migrated and seeded through the `cad` CLI) and
Redis prefix, starts `cad serve --workers 2` on a spare port and `cad simulate`, runs
locust headless for the duration, stops everything, and writes
loadtests/reports/<timestamp>/report.{md,json} and throughput_latency.png. Exits 1 if
any acknowledged call is missing from PostgreSQL or one Idempotency-Key made two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from loadtests import report as report_mod

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "loadtests" / "reports"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def recreate_db(db_url: str, template_url: str | None = None) -> None:
    """The database made anew: empty, or a copy of ``template_url``'s (which nothing may
    be connected to)."""
    name = urlsplit(db_url).path.lstrip("/")
    admin = await asyncpg.connect(with_db(db_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if template_url is None:
            await admin.execute(f'CREATE DATABASE "{name}"')
        else:
            template = urlsplit(template_url).path.lstrip("/")
            await admin.execute(
                f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'
            )
    finally:
        await admin.close()


async def clear_redis(redis_url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    except OSError:
        pass
    finally:
        await client.aclose()


def cad(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cad.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"loadtest: `cad {' '.join(args)}` failed:\n{result.stderr[-2000:]}")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"loadtest: server exited early:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"loadtest: server not ready after {timeout} s:\n{log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def locust_command(
    url: str, duration: int, users: int, workers: int, profile: str, csv_prefix: Path, acks: Path
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtests" / "locustfile.py"),
        "--headless",
        "--host",
        url,
        "--run-time",
        f"{duration}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(csv_prefix),
        "--csv-full-history",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--ack-file",
        str(acks),
        "--peak-handlers",
        str(users),
        "--load-profile",
        profile,
        "--lt-duration",
        str(duration),
    ]
    if workers > 1:
        cmd += ["--processes", str(workers)]
    return cmd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=int, default=120, help="seconds of load")
    parser.add_argument("--users", type=int, default=20, help="call handlers at the peak")
    parser.add_argument("--workers", type=int, default=1, help="locust processes")
    parser.add_argument("--server-workers", type=int, default=2)
    parser.add_argument("--profile", default="seattle", choices=["seattle", "montgomery", "flat"])
    parser.add_argument(
        "--call-interval", type=float, default=1.0, help="s between a handler's calls"
    )
    parser.add_argument("--consoles", type=int, default=5, help="WebSocket console viewers")
    parser.add_argument("--db-name", default="cad_loadtest")
    parser.add_argument("--out", default=None, help="report directory (default: reports/<ts>)")
    args = parser.parse_args(argv)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(args.out) if args.out else REPORTS / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    base_db = os.environ.get("CAD_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/cad")
    db_url = with_db(base_db, args.db_name)
    redis_url = os.environ.get("CAD_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"loadtest:{stamp}"
    env = dict(os.environ)
    env.update(
        CAD_DATABASE_URL=db_url,
        CAD_REDIS_URL=redis_url,
        CAD_REDIS_PREFIX=prefix,
        CAD_LOG_LEVEL="WARNING",
        CAD_LT_CONSOLES=str(args.consoles),
        CAD_LT_CALL_INTERVAL=str(args.call_interval),
    )
    print(f"loadtest: fresh database {db_url}, Redis prefix {prefix}", file=sys.stderr)
    asyncio.run(recreate_db(db_url))
    cad(env, "migrate")
    cad(env, "seed-demo")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = out_dir / "server.log"
    server = sim = None
    acks = out_dir / "acks.jsonl"
    csv_prefix = out_dir / "locust"
    since = datetime.now(UTC)
    locust_rc = None
    try:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cad.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(args.server_workers),
            ],
            env=env,
            cwd=ROOT,
            stdout=server_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_healthy(url, server, server_log)
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cad.cli",
                "simulate",
                "--url",
                url,
                "--tick",
                "3",
                "--speedup",
                "20",
                "--duration",
                str(args.duration + 60),
            ],
            env=env,
            cwd=ROOT,
            stdout=(out_dir / "simulate.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        cmd = locust_command(
            url, args.duration, args.users, args.workers, args.profile, csv_prefix, acks
        )
        print(f"loadtest: {' '.join(cmd[2:])}", file=sys.stderr)
        with (out_dir / "locust.log").open("wb") as log:
            try:
                locust_rc = subprocess.run(
                    cmd,
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=args.duration + 120,
                ).returncode
            except subprocess.TimeoutExpired:
                locust_rc = -1
        # Let the engine finish what it started before the books are checked.
        time.sleep(3)
    finally:
        stop(sim)
        stop(server)
        asyncio.run(clear_redis(redis_url, prefix))

    meta = {
        "started": since.isoformat(),
        "url": url,
        "database": db_url,
        "duration_s": args.duration,
        "profile": args.profile,
        "peak_handlers": args.users,
        "call_interval_s": args.call_interval,
        "consoles": args.consoles,
        "locust_processes": args.workers,
        "server_workers": args.server_workers,
        "locust_exit_code": locust_rc,
    }
    result = asyncio.run(
        report_mod.build(report_mod.RunFiles(out_dir, csv_prefix, acks), db_url, since, meta)
    )
    print((out_dir / "report.md").read_text())
    print(f"loadtest: report in {out_dir}", file=sys.stderr)
    if not result["lost_calls"]["ok"]:
        print("loadtest: FAIL: acknowledged calls lost or duplicated", file=sys.stderr)
        print(json.dumps(result["lost_calls"], indent=2), file=sys.stderr)
        return 1
    if result["total"] is None:
        print("loadtest: FAIL: locust produced no statistics (see locust.log)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
