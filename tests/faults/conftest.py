"""Helpers for fault tests: throwaway PostgreSQL clusters and Redis servers on spare ports,
worker pids, and the figures each fault test reports."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis as redis_sync

from tests.conftest import ARTIFACTS, free_port

FIGURES = ARTIFACTS / "fault-figures.jsonl"


def record_figures(test: str, **figures: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with FIGURES.open("a") as f:
        f.write(json.dumps({"test": test, "at": time.time(), **figures}) + "\n")
    print(f"\nFIGURES {test}: {figures}")


def worker_pids(server_pid: int) -> list[int]:
    """uvicorn's worker processes under a `cad serve --workers N` supervisor."""
    children = psutil.Process(server_pid).children(recursive=True)
    return [
        p.pid
        for p in children
        if "resource_tracker" not in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE
    ]


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis_sync.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis_sync.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(f"{name} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


def _as_postgres(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *args], capture_output=True, timeout=120, check=False
    )


@dataclass
class PgCluster:
    datadir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/cad"

    def start(self) -> None:
        r = _as_postgres(
            _pg_bin("pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60",
            "-l", str(self.datadir / "server.log"),
            "-o", f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1",
            "start",
        )  # fmt: skip
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()

    def stop(self, mode: str = "fast") -> None:
        _as_postgres(_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")


@pytest.fixture
def own_postgres() -> Iterator[PgCluster]:
    datadir = Path(f"/tmp/cad-fault-pg-{uuid.uuid4().hex[:10]}")
    datadir.mkdir()
    shutil.chown(datadir, "postgres", "postgres")
    r = _as_postgres(
        _pg_bin("initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres", "--no-sync"
    )
    assert r.returncode == 0, r.stderr.decode()
    cluster = PgCluster(datadir, free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(datadir, ignore_errors=True)
