"""Operators' switches: the metrics token, and log lines that suit where they go."""

from __future__ import annotations

import asyncio
import io
import json
import sys

import asyncpg
import pytest
import structlog

from cad.app import create_app
from cad.config import Settings
from cad.events.hub import Hub
from cad.observability import configure_logging
from tests.conftest import make_settings, running_api


async def test_metrics_token_guards_metrics_when_set(db_url: str, redis_prefix: str) -> None:
    settings: Settings = make_settings(db_url, redis_prefix, metrics_token="scrape-token-0123")
    async with running_api(settings) as api:
        client = api.client
        assert (await client.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert (await client.get("/metrics", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer scrape-token-0123"}
        r = await client.get("/metrics", headers=right)
        assert r.status_code == 200
        assert "cad_" in r.text or "python_" in r.text
        # Liveness stays open: an orchestrator's probe carries no token.
        assert (await client.get("/healthz")).status_code == 200


async def test_metrics_open_without_a_token(db_url: str, redis_prefix: str) -> None:
    async with running_api(make_settings(db_url, redis_prefix)) as api:
        assert (await api.client.get("/metrics")).status_code == 200


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize("tty", [False, True])
def test_log_lines_are_json_off_a_terminal_and_readable_on_one(
    tty: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _Stream(tty)
    monkeypatch.setattr(sys, "stdout", out)
    configure_logging("INFO", None)
    try:
        structlog.get_logger("t").info("probe.event", incident_id=7)
        line = out.getvalue().strip().splitlines()[-1]
        if tty:
            assert "probe.event" in line and not line.startswith("{")
        else:
            assert json.loads(line)["event"] == "probe.event"
    finally:
        configure_logging("WARNING", False)


async def test_failed_start_leaves_nothing_open(
    db_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the hub cannot start, the pool, Redis client and fleet tasks already made are
    closed: a supervisor restarting the worker must not leak connections each time."""

    async def broken_start(self: Hub) -> None:
        raise RuntimeError("hub cannot start")

    monkeypatch.setattr(Hub, "start", broken_start)
    before = set(asyncio.all_tasks())
    app = create_app(make_settings(db_url, redis_prefix), background=True)
    with pytest.raises(RuntimeError, match="hub cannot start"):
        async with app.router.lifespan_context(app):
            pass
    leftover = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert leftover == [], leftover
    name = db_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(db_url.rsplit("/", 1)[0] + "/postgres")
    try:
        open_conns = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
        )
    finally:
        await admin.close()
    assert open_conns == 0


@pytest.mark.parametrize(("setting", "s_auto"), [(None, True), ("I", False)])
async def test_one_answer_for_which_grades_auto_dispatch(
    db_url: str, redis_prefix: str, setting: str | None, s_auto: bool
) -> None:
    """/api/grades, the grade preview and the engine's list read the same rule: the
    deployment's CAD_AUTO_DISPATCH_GRADES if set, else the grade scheme."""
    settings = make_settings(db_url, redis_prefix, auto_dispatch_grades=setting)
    async with running_api(settings) as api:
        grades = {
            g["code"]: g["auto_dispatch"]
            for g in (await api.as_("handler", "GET", "/api/grades")).json()
        }
        preview = (
            await api.as_(
                "handler", "POST", "/api/calls/grade-preview", json={"incident_type": "ASB"}
            )
        ).json()
        assert preview["grade"] == "S"
        assert grades["S"] is preview["auto_dispatch"] is s_auto
        assert grades["I"] is True and grades["E"] is False
        assert api.state.auto_grades() == (["I", "S"] if s_auto else ["I"])
