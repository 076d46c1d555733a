"""App factory. Every resource is made in lifespan, nothing at import."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp

from cad.alarms.router import router as alarms_router
from cad.areas.service import load_levels
from cad.audit.router import router as audit_router
from cad.auth.guard import SessionGuard
from cad.auth.router import router as auth_router
from cad.auth.service import Auth
from cad.auth.throttle import SigninThrottle
from cad.calls.router import IntakeShortcut
from cad.calls.router import router as calls_router
from cad.calls.service import IntakeBatching
from cad.catalogue.router import router as catalogue_router
from cad.config import Settings, get_settings
from cad.db.pool import DB_DOWN_ERRORS, create_pool
from cad.eido.router import router as eido_router
from cad.emergency.router import router as emergency_router
from cad.errors import CADError, Invalid
from cad.events.hub import Hub
from cad.events.router import POSITIONS_EVERY_S, MovedUnits
from cad.events.router import router as events_router
from cad.fleet import FleetSync
from cad.grading import grade_order, load_catalogue, load_rules, load_scheme
from cad.health.router import router as health_router
from cad.http import API_ERRORS, JSON
from cad.incidents.router import router as incidents_router
from cad.leader import Leader
from cad.markers.catalogue import load_categories
from cad.markers.router import router as markers_router
from cad.observability import RequestContextMiddleware, configure_logging
from cad.places.router import router as places_router
from cad.ratelimit import RateLimiter
from cad.search.router import router as search_router
from cad.security_headers import BrowserHeaders, SecurityHeadersMiddleware
from cad.state import AppState, plans_from_catalogue
from cad.stats.router import router as stats_router
from cad.subscriptions.router import router as subscriptions_router
from cad.units.router import router as units_router
from cad.users.router import router as users_router
from dispatch import service as dispatch_service
from dispatch.directory import UnitDirectory
from gis.eta import KolesarEta, params_from_document, unknown_types
from gis.projection import Projector

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "console_ui" / "static"


class CADApp(FastAPI):
    """FastAPI with the browser security headers as its outermost layer."""

    def __init__(self, browser_headers: BrowserHeaders, **kwargs: Any) -> None:
        self.browser_headers = browser_headers
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's ServerErrorMiddleware (which add_middleware cannot reach), so
        # the 500 and 503 answers of the catch-all handler carry the headers too.
        return SecurityHeadersMiddleware(super().build_middleware_stack(), self.browser_headers)


def _freeze_startup_heap() -> None:
    gc.collect()
    gc.freeze()
    # A young collection per 10,000 allocations rather than 700: a request allocates
    # hundreds, and its cycles are as young when collected either way.
    gc.set_threshold(10_000, 10, 10)


def create_app(settings: Settings | None = None, *, background: bool = True) -> FastAPI:
    """``background=False`` leaves out the leader (relay, engine, timers): for tests that
    drive those parts themselves."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Each resource is closed by the stack as soon as it exists, so a start-up that
        # fails half-way (the hub or leader cannot start) leaves no pool, client or task.
        async with AsyncExitStack() as stack:
            pool = await create_pool(
                settings.database_url,
                settings.db_pool_min,
                settings.db_pool_max,
                settings.db_command_timeout_s,
            )
            stack.push_async_callback(_close_pool, pool)
            # The shared intake statements' own connections: one read and one write in
            # flight at a time (cad/db/group_commit.py), each on a generic plan.
            intake_pool = await create_pool(
                settings.database_url,
                2,
                2,
                settings.db_command_timeout_s,
                generic_plans=True,
                application_name="cad-intake",
            )
            stack.push_async_callback(_close_pool, intake_pool)
            redis = Redis.from_url(
                settings.redis_url,
                socket_timeout=2,
                socket_connect_timeout=2,
                health_check_interval=10,
            )
            stack.push_async_callback(redis.aclose)
            state = await _build_state(settings, pool, redis)
            state.intake = IntakeBatching(
                intake_pool,
                settings.db_acquire_timeout_s,
                settings.intake_linger_ms / 1000,
                settings.intake_min_batch,
            )
            state.fleet = FleetSync(state.directory, pool, redis, state.stream_prefix)
            state.hub = Hub(pool, redis, state.stream_prefix, queue_max=settings.ws_queue_max)
            state.hub.add_listener(state.fleet.on_event)
            assert state.auth is not None
            state.hub.add_listener(state.auth.guard.on_event)
            stack.push_async_callback(state.fleet.stop)
            await state.fleet.start()
            # After the fleet picture is loaded: the first push is what moved since.
            state.hub.push_positions(MovedUnits(state), POSITIONS_EVERY_S)
            stack.push_async_callback(state.hub.stop)
            await state.hub.start()
            # After the hub stands at a horizon: what ended before it is in PostgreSQL,
            # what ends after comes through the hub.
            async with pool.acquire() as conn:
                await state.auth.guard.load(conn)
            if background:
                state.leader = Leader(state)
                state.hub.add_listener(state.leader.on_event)
                stack.push_async_callback(state.leader.stop)
                await state.leader.start()
            app.state.cad = state
            if settings.gc_freeze:
                _freeze_startup_heap()
            log.info(
                "app.started",
                units=len(state.directory),
                areas=len(state.areas),
                wards=len(state.wards) if state.wards is not None else 0,
            )
            yield

    app = CADApp(
        BrowserHeaders.build(settings.map_tile_url, settings.hsts_seconds),
        title="999 CAD",
        version="1.0",
        description="999 call handling and dispatch (police Command & Control).",
        lifespan=lifespan,
        default_response_class=JSON,
        # FastAPI's own pages load Swagger UI / ReDoc from a CDN with an inline script,
        # which the CSP refuses; /docs is served below from this origin instead.
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)
    # Routes are matched in the order they were included, and every 999 call takes
    # POST /api/calls: first, it is found without trying each route of the others.
    app.include_router(calls_router, responses=API_ERRORS)
    app.include_router(health_router)
    for router in (
        auth_router,
        catalogue_router,
        incidents_router,
        units_router,
        events_router,
        stats_router,
        alarms_router,
        places_router,
        search_router,
        markers_router,
        users_router,
        audit_router,
        emergency_router,
        eido_router,
        subscriptions_router,
    ):
        app.include_router(router, responses=API_ERRORS)
    # Added first, so innermost: every middleware below sees the calls it takes.
    app.add_middleware(IntakeShortcut)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-CSRF-Token"],
        )
    if settings.allowed_hosts.strip() != "*":
        app.add_middleware(
            TrustedHostMiddleware,
            allowed_hosts=[h.strip() for h in settings.allowed_hosts.split(",") if h.strip()],
        )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    if STATIC_DIR.is_dir():
        app.mount("/console", StaticFiles(directory=STATIC_DIR, html=True), name="console")

        @app.get("/", include_in_schema=False)
        async def root() -> RedirectResponse:
            return RedirectResponse("/console/")

        @app.get("/docs", include_in_schema=False)
        async def docs() -> FileResponse:
            return FileResponse(STATIC_DIR / "docs" / "index.html")

    return app


def _load_eta(path: str | None) -> KolesarEta:
    if path is None:
        return KolesarEta()
    try:
        params = params_from_document(json.loads(Path(path).read_text(encoding="utf-8")))
    except OSError as exc:
        raise RuntimeError(f"CAD_ETA_PARAMS_FILE {path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"CAD_ETA_PARAMS_FILE {path}: line {exc.lineno}: not valid JSON ({exc.msg})"
        ) from None
    except ValueError as exc:
        raise RuntimeError(
            f"CAD_ETA_PARAMS_FILE {path}: not an ETA params file from `cad eta calibrate` ({exc})"
        ) from None
    ignored = unknown_types(params)
    if ignored:
        log.warning("eta.params_unknown_unit_types", file=path, ignored=ignored)
    log.info("eta.params_loaded", file=path, unit_types=sorted(set(params) - set(ignored)))
    return KolesarEta.with_params(params)


async def _build_state(settings: Settings, pool: asyncpg.Pool, redis: Redis) -> AppState:
    projector = Projector(settings.epsg)
    async with pool.acquire() as conn:
        areas, wards = await load_levels(conn, projector)
        deployment = await conn.fetchval("SELECT id::text FROM deployment")
    # Streams and channels carry this database's identity: a recreated database never
    # reads the events of its predecessor left in Redis.
    stream_prefix = f"{settings.redis_prefix}:{deployment[:8]}"
    catalogue = load_catalogue()
    scheme = load_scheme()
    state = AppState(
        settings=settings,
        pool=pool,
        redis=redis,
        projector=projector,
        areas=areas,
        wards=wards,
        catalogue=catalogue,
        scheme=scheme,
        rules=load_rules(),
        eta=_load_eta(settings.eta_params_file),
        directory=UnitDirectory(projector, grade_order(scheme)),
        plans=plans_from_catalogue(catalogue, emergency_units=settings.emergency_units),
        marker_categories=load_categories(),
        stream_prefix=stream_prefix,
    )
    state.limiter = RateLimiter(redis, settings.redis_prefix, settings.rate_limit_per_min)
    throttle = SigninThrottle(
        redis,
        stream_prefix,
        max_failures=settings.signin_max_failures,
        window_s=settings.signin_window_s,
        lockout_s=settings.signin_lockout_s,
        address_max_failures=settings.signin_address_max_failures,
    )
    state.auth = Auth(settings, pool, throttle, SessionGuard(settings.jwt_ttl_s))
    return state


async def _close_pool(pool: asyncpg.Pool) -> None:
    try:
        # A connection still held (a request cut off mid-flight) would make a graceful
        # close wait forever: give it a bound, then terminate.
        await asyncio.wait_for(pool.close(), timeout=10)
    except TimeoutError:
        log.warning("pool.close_timeout")
        pool.terminate()


def _body(detail: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"detail": detail, "code": code, **extra}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CADError)
    async def cad_error(request: Request, exc: CADError) -> JSON:
        extra = dict(exc.extra)
        if isinstance(exc, Invalid):
            extra["errors"] = [{"field": exc.field, "reason": exc.detail}]
            detail = f"{exc.field}: {exc.detail}"
        else:
            detail = exc.detail
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        if "retry_after_s" in extra:
            headers = {"Retry-After": str(extra["retry_after_s"])}
        return JSON(_body(detail, exc.code, **extra), status_code=exc.status_code, headers=headers)

    @app.exception_handler(dispatch_service.DispatchError)
    async def dispatch_error(request: Request, exc: dispatch_service.DispatchError) -> JSON:
        if isinstance(exc, dispatch_service.InvalidPressedAt):
            errors = [{"field": "pressed_at", "reason": exc.detail}]
            return JSON(
                _body(f"pressed_at: {exc.detail}", "invalid", errors=errors), status_code=422
            )
        status = (
            404
            if isinstance(exc, dispatch_service.UnitNotFound | dispatch_service.IncidentNotFound)
            else 409
        )
        return JSON(
            _body(exc.detail, "not_found" if status == 404 else "conflict", **exc.extra),
            status_code=status,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSON:
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            field = ".".join(loc) or "body"
            errors.append({"field": field, "reason": err.get("msg", "invalid")})
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])
        return JSON(_body(detail, "invalid", errors=errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSON:
        # Framework errors (unknown route, wrong method, unparseable body) in our error shape.
        if exc.status_code == 400 and request.method in ("POST", "PUT", "PATCH"):
            # FastAPI's 400 for a body its JSON parser gave up on (e.g. nested too deeply).
            reason = "not parseable as JSON (malformed or nested too deeply)"
            errors = [{"field": "body", "reason": reason}]
            return JSON(_body(f"body: {reason}", "invalid", errors=errors), status_code=422)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSON(_body(str(exc.detail), code), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(asyncpg.PostgresError)
    async def postgres_error(request: Request, exc: asyncpg.PostgresError) -> JSON:
        if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
            return JSON(_body("conflicting concurrent update; retry", "conflict"), status_code=409)
        if isinstance(exc, asyncpg.UniqueViolationError):
            return JSON(_body("already exists", "conflict"), status_code=409)
        if isinstance(exc, asyncpg.CannotConnectNowError | asyncpg.AdminShutdownError):
            return JSON(_body("database unavailable", "unavailable"), status_code=503)
        if isinstance(
            exc, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError
        ):
            # PostgreSQL text cannot hold NUL (U+0000): bad input, not a server fault.
            reason = "text must not contain NUL (\\u0000) characters"
            errors = [{"field": "body", "reason": reason}]
            return JSON(_body(f"body: {reason}", "invalid", errors=errors), status_code=422)
        log.error("db.error", error=type(exc).__name__, sqlstate=exc.sqlstate)
        return JSON(_body("internal database error", "internal"), status_code=500)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSON:
        if isinstance(exc, DB_DOWN_ERRORS) or isinstance(exc, TimeoutError):
            return JSON(
                _body(f"database unavailable: {type(exc).__name__}", "unavailable"),
                status_code=503,
            )
        log.exception("request.failed")
        return JSON(_body("internal error", "internal"), status_code=500)
