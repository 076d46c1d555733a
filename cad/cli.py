"""The ``cad`` command. Every subcommand honours the CAD_* environment."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from cad.config import get_settings


def _fail(message: str) -> None:
    print(f"cad: error: {message}", file=sys.stderr)
    raise SystemExit(2)


async def _connect() -> asyncpg.Connection:
    from cad.db.migrate import ensure_database
    from cad.db.pool import connect

    settings = get_settings()
    try:
        await ensure_database(settings.database_url)
        return await connect(settings.database_url)
    except (OSError, asyncpg.PostgresError) as exc:
        _fail(
            f"cannot reach PostgreSQL at {settings.database_url} ({exc}). Start it with "
            "`make services` or set CAD_DATABASE_URL."
        )
        raise


async def _migrate() -> None:
    from cad.db.migrate import migrate

    conn = await _connect()
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")


async def _seed_demo() -> None:
    from cad.areas.service import load_active
    from cad.seed import DEMO_USERS, seed_demo
    from gis.projection import Projector

    conn = await _connect()
    try:
        async with conn.transaction():
            areas = await load_active(conn, Projector(get_settings().epsg))
            counts = await seed_demo(conn, areas)
    finally:
        await conn.close()
    print(f"demo data: {counts['units']} units, {counts['users']} users, {len(areas)} areas")
    print("demo sign-ins (username / password / role):")
    for user in DEMO_USERS:
        print(
            f"  {user.username:<11} {user.password:<17} {user.role}"
            + (f" ({user.unit})" if user.unit else "")
        )


async def _areas_import(path: str) -> None:
    from cad.areas.service import import_areas
    from gis.areas import AreaImportError
    from gis.projection import Projector

    file = Path(path)
    try:
        data = json.loads(await asyncio.to_thread(file.read_text))
    except FileNotFoundError:
        _fail(f"{path}: no such file")
    except json.JSONDecodeError as exc:
        _fail(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})")
    conn = await _connect()
    try:
        async with conn.transaction():
            areas = await import_areas(
                conn, data, file.name, "admin:cli", Projector(get_settings().epsg)
            )
    except AreaImportError as exc:
        _fail(f"{path}: {exc}")
    finally:
        await conn.close()
    print(f"imported {len(areas)} response areas from {path}; restart workers to use them")


async def _users_add(username: str, role: str, password: str, unit: str | None) -> None:
    from cad.auth.service import add_user
    from cad.errors import Invalid

    conn = await _connect()
    try:
        async with conn.transaction():
            user_id = await add_user(conn, username, role, password, unit)
    except Invalid as exc:
        _fail(f"{exc.field}: {exc.detail}")
    finally:
        await conn.close()
    print(f"user {username} ({role}) saved as id {user_id}")


def _serve(host: str, port: int, workers: int, reload: bool) -> None:
    import uvicorn

    uvicorn.run(
        "cad.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level="warning",
        access_log=False,
        ws_max_size=64 * 1024,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cad", description="999 call handling and dispatch")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("seed-demo", help="demo users, fleet and areas (idempotent)")
    serve = sub.add_parser("serve", help="API + relay + dispatch engine")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--reload", action="store_true")
    sim = sub.add_parser("simulate", help="drive the demo units against a running API")
    sim.add_argument("--url", default="http://127.0.0.1:8000")
    sim.add_argument("--username", default="simulator")
    sim.add_argument("--password", default="simulator-999")
    sim.add_argument("--tick", type=float, default=3.0, help="seconds between position reports")
    sim.add_argument("--speedup", type=float, default=1.0, help="time on scene divided by this")
    sim.add_argument("--calls-per-min", type=float, default=0.0, help="also generate calls")
    sim.add_argument("--duration", type=float, default=0.0, help="stop after N seconds (0: never)")
    replay = sub.add_parser("replay", help="replay a real call log against a running API")
    replay.add_argument("file")
    replay.add_argument("--speed", type=float, default=60.0)
    replay.add_argument("--url", default="http://127.0.0.1:8000")
    replay.add_argument("--multiply", type=int, default=1, help="each call sent N times")
    replay.add_argument("--start", default=None, help="ISO time to start the log at")
    replay.add_argument("--limit", type=int, default=0, help="at most N calls")
    replay.add_argument("--username", default="handler")
    replay.add_argument("--password", default="handler-999")
    areas = sub.add_parser("areas", help="response areas")
    areas_sub = areas.add_subparsers(dest="areas_command", required=True)
    imp = areas_sub.add_parser("import", help="replace the response areas from a GeoJSON file")
    imp.add_argument("file")
    users = sub.add_parser("users", help="user accounts")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="add or update a user")
    add.add_argument("username")
    add.add_argument("--role", required=True)
    add.add_argument("--password", required=True)
    add.add_argument("--unit", default=None, help="callsign, for role unit")
    args = parser.parse_args(argv)

    started = time.monotonic()
    if args.command == "migrate":
        asyncio.run(_migrate())
    elif args.command == "seed-demo":
        asyncio.run(_seed_demo())
    elif args.command == "serve":
        _serve(args.host, args.port, args.workers, args.reload)
    elif args.command == "simulate":
        from dispatch.simulator import SimulatorConfig, run_simulator

        asyncio.run(
            run_simulator(
                SimulatorConfig(
                    url=args.url,
                    username=args.username,
                    password=args.password,
                    tick_s=args.tick,
                    speedup=args.speedup,
                    calls_per_min=args.calls_per_min,
                    duration_s=args.duration,
                )
            )
        )
    elif args.command == "replay":
        from loadtests.replay import ReplayConfig, run_replay

        summary: dict[str, Any] = asyncio.run(
            run_replay(
                ReplayConfig(
                    file=args.file,
                    url=args.url,
                    speed=args.speed,
                    multiply=args.multiply,
                    start=args.start,
                    limit=args.limit,
                    username=args.username,
                    password=args.password,
                )
            )
        )
        print(json.dumps(summary, indent=2))
    elif args.command == "areas":
        asyncio.run(_areas_import(args.file))
    elif args.command == "users":
        asyncio.run(_users_add(args.username, args.role, args.password, args.unit))
    if args.command not in ("serve", "simulate"):
        print(f"done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
