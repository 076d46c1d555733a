"""Test harness: real PostgreSQL and Redis, never mocked.

A migrated, seeded template database is built once per run; every test gets its own
database cloned from it (CREATE DATABASE … TEMPLATE, fast) and its own Redis key prefix,
so tests cannot see each other's state.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from cad.app import create_app
from cad.config import Settings
from cad.db.migrate import migrate
from cad.db.pool import connect, transaction
from cad.places.service import ensure_gazetteer, load_places
from cad.seed import DEMO_USERS, seed_demo
from gis.areas import AreaSet
from tests import contract

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
PG_BASE = os.environ.get("CAD_TEST_PG_BASE", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("CAD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORDS = {u.username: u.password for u in DEMO_USERS}
ARTIFACTS = ROOT / "test-artifacts"


def shared_file(name: str) -> Path:
    """A file from ../shared/data; a missing one fails the test (CI has them all)."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.fail(f"real data file {path} is missing: tests read ../shared/data beside the repo")
    return path


def run_cad(db_url: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The `cad` command against one database, with nothing else of this shell's
    environment: what an operator on a fresh machine would run."""
    return subprocess.run(
        [sys.executable, "-m", "cad.cli", *args],
        cwd=ROOT,
        env={"CAD_DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _admin() -> asyncpg.Connection:
    return await asyncpg.connect(f"{PG_BASE}/postgres")


# Tests that read postcodes (type-ahead, reverse lookup, intake by postcode, the browser
# flows) clone a template holding all 180,792 London postcodes; the rest clone a lean one
# with the named places only: a clone costs about its size, paid once per test.
GAZETTEER_PATHS = (
    "tests/places/",
    "tests/browser/",
    "tests/intake/test_intake_place.py",
    "tests/retrieval/test_search_postcode.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath)).relative_to(ROOT).as_posix()
        if path.startswith(GAZETTEER_PATHS):
            item.add_marker(pytest.mark.gazetteer)


async def _build_template(name: str, postcodes: bool) -> None:
    admin = await _admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await connect(f"{PG_BASE}/{name}")
    try:
        await migrate(conn)
        async with conn.transaction():
            await seed_demo(conn, AreaSet.london_default())
        async with conn.transaction():
            if postcodes:
                # The London postcodes and named places, as `cad seed-demo` loads them.
                await ensure_gazetteer(conn, AreaSet.london_default(), AreaSet.london_wards())
            else:
                await load_places(conn, AreaSet.london_default(), AreaSet.london_wards())
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


class Templates:
    """Migrated, seeded template databases, each built once per run when first needed."""

    def __init__(self) -> None:
        self.built: dict[bool, str] = {}

    async def name(self, postcodes: bool) -> str:
        if postcodes not in self.built:
            name = f"cad_tpl_{'full' if postcodes else 'lean'}_{os.getpid()}"
            await _build_template(name, postcodes)
            self.built[postcodes] = name
        return self.built[postcodes]


@pytest.fixture(scope="session")
async def templates() -> AsyncIterator[Templates]:
    made = Templates()
    yield made
    admin = await _admin()
    try:
        for name in made.built.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def template_db(templates: Templates, request: pytest.FixtureRequest) -> str:
    return await templates.name(request.node.get_closest_marker("gazetteer") is not None)


@pytest.fixture
async def db_url(template_db: str) -> AsyncIterator[str]:
    name = f"cad_t_{uuid.uuid4().hex[:16]}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        yield f"{PG_BASE}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def redis_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis(redis_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    keys = [k async for k in client.scan_iter(f"{redis_prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def make_settings(db_url: str, redis_prefix: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": db_url,
        "redis_url": REDIS_URL,
        "redis_prefix": redis_prefix,
        "log_json": False,
        "log_level": "WARNING",
        "db_pool_min": 1,
        "db_pool_max": 10,
        "engine_interval_s": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(db_url: str, redis_prefix: str) -> Settings:
    return make_settings(db_url, redis_prefix)


@dataclass
class Api:
    """An in-process app (lifespan running) and an HTTP client to it."""

    app: Any
    client: httpx.AsyncClient
    settings: Settings
    _tokens: dict[str, str]

    async def token(self, username: str) -> str:
        if username not in self._tokens:
            r = await self.client.post(
                "/api/auth/token", data={"username": username, "password": PASSWORDS[username]}
            )
            assert r.status_code == 200, r.text
            self._tokens[username] = r.json()["access_token"]
        return self._tokens[username]

    async def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(username)}"}

    async def as_(self, username: str, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {**kw.pop("headers", {}), **await self.headers(username)}
        return await self.client.request(method, url, headers=headers, **kw)

    @property
    def state(self) -> Any:
        return self.app.state.cad

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction on the app's pool, as the engine and timers take them."""
        async with transaction(self.state.pool) as conn:
            yield conn


async def start_api(settings: Settings, background: bool) -> tuple[Any, Any, httpx.AsyncClient]:
    app = create_app(settings, background=background)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        timeout=30,
        event_hooks=contract.hooks(app),
    )
    return app, lifespan, client


@asynccontextmanager
async def running_api(settings: Settings, background: bool = False) -> AsyncIterator[Api]:
    """An in-process app with these settings, for as long as the block runs."""
    app, lifespan, client = await start_api(settings, background)
    try:
        yield Api(app, client, settings, {})
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """The API without the leader: no auto-dispatch, relay or timers unless a test runs them."""
    async with running_api(settings) as running:
        yield running


@pytest.fixture
async def live_api(settings: Settings) -> AsyncIterator[Api]:
    """The API with everything running: leader, relay, auto-dispatch, timers."""
    async with running_api(settings, background=True) as running:
        yield running


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CAD_DATABASE_URL=settings.database_url,
        CAD_REDIS_URL=settings.redis_url,
        CAD_REDIS_PREFIX=settings.redis_prefix,
        CAD_ENV="test",
        CAD_LOG_LEVEL="WARNING",
        CAD_ENGINE_INTERVAL_S="0.2",
    )
    env.update(extra)
    return env


def start_server(
    settings: Settings, workers: int = 1, port: int | None = None, name: str = "server", **env: str
) -> Server:
    port = port or free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / f"{name}-{port}.log"
    full_env = server_env(settings, **env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cad.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=full_env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    server = Server(f"http://127.0.0.1:{port}", port, proc, full_env, log)
    wait_ready(server)
    return server


def wait_ready(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited early: {server.log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout}s: {server.log.read_text()[-2000:]}")


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    """A real `cad serve` process (one worker) on a spare port."""
    srv = start_server(settings)
    yield srv
    srv.stop()


async def login(base_url: str, username: str) -> str:
    async with httpx.AsyncClient(base_url=base_url) as client:
        r = await client.post(
            "/api/auth/token", data={"username": username, "password": PASSWORDS[username]}
        )
        r.raise_for_status()
        return str(r.json()["access_token"])


def call_body(
    incident_type: str = "VIOLENCE",
    lat: float = 51.5074,
    lng: float = -0.1278,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "caller": {"name": "Test Caller", "phone": "07700 900000"},
        "location": {"lat": lat, "lng": lng},
        "location_source": "aml",
        "incident_type": incident_type,
        "description": "test call",
        "risk": {},
    }
    body.update(extra)
    return body


async def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll an async predicate until it returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        await asyncio.sleep(interval)
