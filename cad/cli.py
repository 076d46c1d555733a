"""The ``cad`` command. Every subcommand honours the CAD_* environment."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

    if get_settings().env == "production":
        _fail("seed-demo makes demo accounts with published passwords: not with CAD_ENV=production")
    conn = await _connect()
    try:
        async with conn.transaction():
            areas = await load_active(conn, Projector(get_settings().epsg))
            counts = await seed_demo(conn, areas)
        gazetteer = await _ensure_gazetteer(conn)
    finally:
        await conn.close()
    print(f"demo data: {counts['units']} units, {counts['users']} users, {len(areas)} areas")
    loaded = gazetteer["postcodes"]
    print(
        f"gazetteer: {gazetteer['postcode_count']:,} postcodes"
        + (f" ({loaded['inserted']:,} new, {loaded['updated']:,} updated)" if loaded else "")
        + f", {gazetteer['places']:,} named places"
    )
    print("demo sign-ins (username / password / role):")
    for user in DEMO_USERS:
        print(
            f"  {user.username:<11} {user.password:<17} {user.role}"
            + (f" ({user.unit})" if user.unit else "")
        )


async def _areas_import(path: str, level: str = "borough") -> None:
    from cad.areas.service import import_areas, load_levels
    from cad.places.service import load_places
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
            projector = Projector(get_settings().epsg)
            areas = await import_areas(conn, data, file.name, "admin:cli", projector, level)
            # The gazetteer names boroughs and wards: keep it in step with the new sets.
            active, wards = await load_levels(conn, projector)
            await load_places(conn, active, wards)
    except AreaImportError as exc:
        _fail(f"{path}: {exc}")
    finally:
        await conn.close()
    what = "response areas" if level == "borough" else "wards (sectors)"
    print(f"imported {len(areas)} {what} from {path}; restart workers to use them")


class _Progress:
    """A one-line progress bar on stderr, redrawn at most 5 times a second."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and done < total:
            return
        self.last, self.shown = now, True
        width = 30
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {100 * done // max(total, 1):3d}%")
        sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


async def _ensure_gazetteer(conn: asyncpg.Connection) -> dict[str, Any]:
    """The packaged London postcodes (if absent or older) and the named places."""
    from cad.areas.service import load_levels
    from cad.places.service import ensure_gazetteer
    from gis.projection import Projector

    bar = _Progress("london postcodes")
    try:
        async with conn.transaction():
            areas, wards = await load_levels(conn, Projector(get_settings().epsg))
            return await ensure_gazetteer(conn, areas, wards, bar)
    finally:
        bar.close()


async def _gazetteer_import(paths: list[str]) -> None:
    from cad.places import repository
    from cad.places.service import CodePointError, ImportSummary, import_codepoint

    files = [Path(p) for p in paths]
    for f in files:
        if not f.is_file():
            _fail(f"{f}: no such file")
    conn = await _connect()
    done: list[ImportSummary] = []
    try:
        for i, f in enumerate(files, 1):
            bar = _Progress(f"[{i}/{len(files)}] {f.name}")
            try:
                # One transaction per file: a bad line loads nothing of its file, and
                # the files before it stay loaded (re-running them changes nothing).
                async with conn.transaction():
                    done.append(await import_codepoint(conn, f, bar))
            except CodePointError as exc:
                bar.close()
                if done:
                    print(f"loaded before the error: {', '.join(Path(s.file).name for s in done)}")
                _fail(str(exc))
            bar.close()
        total = await repository.postcode_count(conn)
    finally:
        await conn.close()
    _print_import_summary(done, total)


def _print_import_summary(done: list[Any], total: int) -> None:
    head = f"{'file':<40} {'read':>10} {'inserted':>10} {'updated':>10} {'unchanged':>10} {'skipped':>8}"
    print(head)
    skipped: dict[str, int] = {}
    sums = [0, 0, 0, 0, 0]
    for s in done:
        n_skip = sum(s.skipped.values())
        row = [s.rows_read, s.inserted, s.updated, s.unchanged, n_skip]
        sums = [a + b for a, b in zip(sums, row, strict=True)]
        for reason, n in s.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
        name = Path(s.file).name
        print(f"{name[:40]:<40} " + " ".join(f"{v:>10,}" for v in row[:4]) + f" {n_skip:>8,}")
    if len(done) > 1:
        print(f"{'total':<40} " + " ".join(f"{v:>10,}" for v in sums[:4]) + f" {sums[4]:>8,}")
    for reason, n in sorted(skipped.items()):
        print(f"skipped {n:,}: {reason}")
    dups = sum(s.duplicates for s in done)
    if dups:
        print(f"{dups:,} postcodes listed twice in a file: the last line was kept")
    print(f"postcodes in the gazetteer: {total:,}")


async def _users_add(
    username: str, role: str, password: str, unit: str | None, temporary: bool
) -> None:
    from cad.auth.service import add_user
    from cad.errors import Invalid

    conn = await _connect()
    try:
        async with conn.transaction():
            user_id = await add_user(
                conn, username, role, password, unit, must_change_password=temporary
            )
    except Invalid as exc:
        _fail(f"{exc.field}: {exc.detail}")
    finally:
        await conn.close()
    then = " (to be changed at first sign-in)" if temporary else ""
    print(f"user {username} ({role}) saved as id {user_id}{then}")


def _cli_admin() -> Any:
    import getpass

    from cad.audit.service import Client
    from cad.users.service import Admin

    who = getpass.getuser()
    return Admin(f"cli:{who}", None, f"cli:{who}", Client("cli", None))


async def _users(command: str, username: str | None, password: str | None) -> None:
    """Account administration from the command line, by the same rules as the API:
    every change is audited, and one that ends sessions reaches every worker through
    the event log within seconds."""
    import secrets

    from cad.auth.service import unlock
    from cad.errors import CADError, Invalid
    from cad.users import service

    conn = await _connect()
    try:
        async with conn.transaction():
            by = _cli_admin()
            if command == "list":
                _print_users(await service.list_users(conn))
                return
            assert username is not None
            if command in ("disable", "enable"):
                user, ended, _ = await service.change_user(
                    conn, by, username, {"disabled": command == "disable"}
                )
                print(f"{username}: {'disabled' if user['disabled'] else 'enabled'}; "
                      f"{len(ended)} session(s) ended")  # fmt: skip
            elif command == "reset":
                chosen = password or _temporary_password(secrets)
                user, ended, _ = await service.change_user(conn, by, username, {"password": chosen})
                print(f"{username}: password reset; {len(ended)} session(s) ended; "
                      "the user must change it at next sign-in")  # fmt: skip
                if password is None:
                    print(f"temporary password: {chosen}")
            elif command == "end-sessions":
                ended = await service.end_all_sessions(conn, by, username)
                print(f"{username}: {len(ended)} session(s) ended")
            elif command == "unlock":
                was = await unlock(conn, None, username, by.actor, by.client)
                print(f"{username}: {'unlocked' if was else 'was not locked'}")
    except Invalid as exc:
        _fail(f"{exc.field}: {exc.detail}")
    except CADError as exc:
        _fail(exc.detail)
    finally:
        await conn.close()


def _temporary_password(secrets: Any) -> str:
    words = ["amber", "birch", "cobalt", "delta", "ember", "fjord", "granite", "harbour",
             "indigo", "juniper", "kestrel", "lantern", "meadow", "nimbus", "orchard",
             "pebble", "quartz", "river", "saffron", "thistle", "umber", "velvet", "willow"]  # fmt: skip
    return "-".join(secrets.choice(words) for _ in range(4)) + f"-{secrets.randbelow(100)}"


def _print_users(users: list[dict[str, Any]]) -> None:
    print(f"{'username':<20} {'role':<13} {'unit':<7} {'state':<22} sessions")
    for u in users:
        state = "disabled" if u["disabled"] else "active"
        if u["locked_until"] is not None:
            state = f"locked to {u['locked_until']:%H:%M:%S}Z"
        elif u["must_change_password"]:
            state += ", must change pw"
        unit = u["unit_callsign"] or "-"
        print(f"{u['username']:<20} {u['role']:<13} {unit:<7} {state:<22} {u['open_sessions']}")


def _eta_calibrate(args: argparse.Namespace) -> None:
    from cad.study.calibrate import CalibrationError, calibrate, calibrate_from_database

    if args.database:
        settings = get_settings()
        try:
            doc, lines = calibrate_from_database(
                settings.database_url, args.unit_type, settings.epsg, by=args.by,
                seed=args.seed, sample=args.sample,
            )  # fmt: skip
        except CalibrationError as exc:
            _fail(str(exc))
        except (OSError, asyncpg.PostgresError) as exc:
            _fail(f"cannot read the database: {type(exc).__name__}: {exc}")
        _write_params(doc, lines, args.out)
        return
    file = Path(args.file)
    if not file.is_file():
        _fail(f"{file}: no such file")
    if args.stations:
        stations = [Path(p) for p in args.stations]
    else:
        # LFB's incident files come with its station lists beside them.
        stations = [
            p for p in (file.parent / n for n in ("lfb_property_fs.csv", "lfb_stations.csv"))
            if p.is_file()
        ]  # fmt: skip
        if not stations:
            _fail(f"no station list beside {file}: name one with --stations")
    for p in stations:
        if not p.is_file():
            _fail(f"{p}: no such file")
    try:
        doc, lines = calibrate(
            file,
            stations,
            unit_type=args.unit_type,
            by=args.by,
            seed=args.seed,
            only_nearest=args.only_nearest,
            sample=args.sample,
        )
    except CalibrationError as exc:
        _fail(str(exc))
    _write_params(doc, lines, args.out)


def _write_params(doc: dict[str, Any], lines: list[str], out: str | None) -> None:
    print("\n".join(lines))
    if out:
        Path(out).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"params written to {out}; set CAD_ETA_PARAMS_FILE to use them")


def _study(args: argparse.Namespace) -> None:
    from cad.study.run import run_study
    from cad.study.sources import SourceError

    fleet = Path(args.fleet) if args.fleet else None
    if fleet is not None and not fleet.is_file():
        _fail(f"{fleet}: no such file")
    log_file = Path(args.log_file) if args.log_file else None
    if log_file is not None and not log_file.is_file():
        _fail(f"{log_file}: no such file")
    if args.policies or args.find_fleet:
        _study_compare(args, fleet, log_file)
        return
    try:
        summary = run_study(
            log=args.log,
            log_file=log_file,
            fleet_file=fleet,
            seed=args.seed,
            out=Path(args.out),
            hours=args.hours,
            e_delay_s=args.e_delay_min * 60,
        )
    except (SourceError, ValueError) as exc:
        _fail(str(exc))
    for code, g in summary["grades"].items():
        if "received_to_dispatch_s" in g:
            d, s = g["received_to_dispatch_s"], g["received_to_on_scene_s"]
            print(
                f"{code}: {g['calls']} calls, to dispatch median {d['median']} s p90 {d['p90']} s,"
                f" to scene median {s['median']} s p90 {s['p90']} s,"
                f" within target {g['on_scene_within_target_pct']}%"
            )
        else:
            print(f"{code}: {g['calls']} calls, closed without dispatch")
    print(f"simulated in {summary['simulated_in_s']} s; report in {args.out}/report.md")


def _parse_target(text: str) -> tuple[str, float]:
    """'I:90%' -> ('I', 90.0)."""
    grade, sep, pct = text.partition(":")
    try:
        value = float(pct.strip().rstrip("%"))
    except ValueError:
        value = -1.0
    if not sep or not grade.strip() or not 0 < value <= 100:
        _fail(f"--target {text!r}: expected GRADE:PCT%, e.g. I:90%")
    return grade.strip(), value


def _study_compare(args: argparse.Namespace, fleet: Path | None, log_file: Path | None) -> None:
    from cad.study.run import run_find_fleet, run_policies
    from cad.study.sources import SourceError
    from dispatch.policy import Policy

    common: dict[str, Any] = {
        "log": args.log,
        "log_file": log_file,
        "fleet_file": fleet,
        "out": Path(args.out),
        "hours": args.hours,
        "e_delay_s": args.e_delay_min * 60,
    }
    try:
        if args.find_fleet:
            grade, pct = _parse_target(args.target)
            doc = run_find_fleet(
                grade=grade, target_pct=pct, seed=args.seed, max_runs=args.max_runs, **common
            )
            if not doc["met"]:
                print(f"not met: {doc['reason']} ({doc['start']['pct']}%)")
            else:
                found = doc["found"]
                print(
                    f"{found['total']} response cars (from {doc['start']['total']}), "
                    f"{grade} within target {found['pct']}%, {doc['runs']} runs; "
                    f"binding: {', '.join(doc['binding']) or 'none'}"
                )
            print(f"simulated in {doc['simulated_in_s']} s; report in {args.out}/fleet.md")
            return
        names = [p.strip() for p in args.policies.split(",") if p.strip()]
        try:
            policies = [Policy(n) for n in names]
        except ValueError:
            _fail(f"--policies: one or more of {', '.join(p.value for p in Policy)}")
        if args.seeds < 1:
            _fail("--seeds: at least 1")
        doc = run_policies(
            policies=policies,
            seeds=args.seeds,
            seed=args.seed,
            margin_s=args.policy_margin_s,
            **common,
        )
    except (SourceError, ValueError) as exc:
        _fail(str(exc))
    base = doc["baseline"]
    for policy, per in doc["policies"].items():
        for code, m in per.items():
            d, s, w = m["dispatch_median_s"], m["scene_median_s"], m["within_target_pct"]
            print(
                f"{policy} {code}: to dispatch median {d['value']['mean']} s, to scene median "
                f"{s['value']['mean']} s, within target {w['value']['mean']}% "
                f"(vs {base}: {w['vs_' + base]['mean']} points)"
            )
    print(f"simulated in {doc['simulated_in_s']} s; report in {args.out}/policies.md")


def _serve(host: str, port: int, workers: int, reload: bool) -> None:
    import uvicorn

    # Served workers freeze their start-up heap (see Settings.gc_freeze); the spawned
    # workers read it from the environment they inherit.
    os.environ.setdefault("CAD_GC_FREEZE", "true")

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
    imp.add_argument(
        "--level",
        choices=("borough", "ward"),
        default="borough",
        help="borough: the response areas (default); ward: the sectors within them",
    )
    gaz = sub.add_parser("gazetteer", help="postcodes and places")
    gaz_sub = gaz.add_subparsers(dest="gazetteer_command", required=True)
    gimp = gaz_sub.add_parser(
        "import", help="load OS Code-Point Open CSV files (headerless or with a header, .gz ok)"
    )
    gimp.add_argument("files", nargs="+", metavar="FILE")
    users = sub.add_parser("users", help="user accounts")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="add or update a user")
    add.add_argument("username")
    add.add_argument("--role", required=True)
    add.add_argument("--password", required=True)
    add.add_argument("--unit", default=None, help="callsign, for role unit")
    add.add_argument(
        "--temporary",
        action="store_true",
        help="the user must change the password at first sign-in",
    )
    users_sub.add_parser("list", help="every account, its state and open sessions")
    for name, text in (
        ("disable", "disable an account and end its sessions on every worker"),
        ("enable", "enable a disabled account"),
        ("end-sessions", "sign the user out everywhere"),
        ("unlock", "end a sign-in lockout (an account or any name tried)"),
    ):
        users_sub.add_parser(name, help=text).add_argument("username")
    reset = users_sub.add_parser(
        "reset", help="reset a password (printed if not given); changed at next sign-in"
    )
    reset.add_argument("username")
    reset.add_argument("--password", default=None)
    eta = sub.add_parser("eta", help="the ETA model")
    eta_sub = eta.add_subparsers(dest="eta_command", required=True)
    cal = eta_sub.add_parser(
        "calibrate",
        help="fit the ETA model to observed attendances (an LFB incident file, or the "
        "service's own closed assignments with --database)",
    )
    source = cal.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="LFB-layout incident CSV")
    source.add_argument(
        "--database",
        action="store_true",
        help="closed assignments in CAD_DATABASE_URL (of --unit-type): where each unit was "
        "sent from to its on-scene time",
    )
    cal.add_argument(
        "--stations",
        nargs="+",
        default=None,
        metavar="CSV",
        help="station lists (name,easting,northing or LFB property list); an earlier file "
        "wins a name both list. Default: lfb_property_fs.csv, lfb_stations.csv beside --file",
    )
    cal.add_argument("--unit-type", default="pump", help="the unit type the params are for")
    cal.add_argument("--by", choices=("borough", "hour"), default=None)
    cal.add_argument("--out", default=None, help="write the params JSON here")
    cal.add_argument("--seed", type=int, default=0, help="seeds the 80/20 hold-out split")
    cal.add_argument(
        "--only-nearest",
        action="store_true",
        help="only attendances whose deployed-from station was the nearest one",
    )
    cal.add_argument("--sample", type=int, default=0, help="use at most N rows (0: all)")
    study = sub.add_parser(
        "study", help="replay a call log through grading and auto-dispatch on a virtual clock"
    )
    study.add_argument(
        "--log",
        choices=("sf", "montgomery"),
        default="sf",
        help="the SF Fire week, or Montgomery County's snowstorm day (2018-11-15)",
    )
    study.add_argument("--log-file", default=None, help="the log (default: the shared file)")
    study.add_argument("--fleet", default=None, help="fleet CSV/JSON (default: demo fleet)")
    study.add_argument("--seed", type=int, default=0, help="seeds the times on scene")
    study.add_argument("--out", default="study-out", help="directory for the report")
    study.add_argument("--hours", type=float, default=None, help="only the first N hours")
    study.add_argument(
        "--e-delay-min", type=float, default=120.0, help="Extended calls booked this much later"
    )
    study.add_argument(
        "--policies",
        default=None,
        help="compare dispatch policies side by side: nearest,own_area,coverage",
    )
    study.add_argument(
        "--seeds", type=int, default=1, help="with --policies: seeds --seed .. --seed+N-1"
    )
    study.add_argument(
        "--policy-margin-s",
        type=int,
        default=120,
        help="own_area: another borough's unit only if this much faster; coverage: a "
        "borough's last unit kept if another is at most this much slower",
    )
    study.add_argument(
        "--find-fleet",
        action="store_true",
        help="search the fewest response cars per borough meeting --target",
    )
    study.add_argument("--target", default="I:90%", help="with --find-fleet: GRADE:PCT%%")
    study.add_argument(
        "--max-runs", type=int, default=100, help="with --find-fleet: at most N simulations"
    )
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
        asyncio.run(_areas_import(args.file, args.level))
    elif args.command == "gazetteer":
        asyncio.run(_gazetteer_import(args.files))
    elif args.command == "eta":
        _eta_calibrate(args)
    elif args.command == "study":
        _study(args)
    elif args.command == "users" and args.users_command == "add":
        asyncio.run(_users_add(args.username, args.role, args.password, args.unit, args.temporary))
    elif args.command == "users":
        asyncio.run(
            _users(args.users_command, getattr(args, "username", None),
                   getattr(args, "password", None))
        )  # fmt: skip
    if args.command not in ("serve", "simulate"):
        print(f"done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
