"""Operators' switches: the metrics token, and log lines that suit where they go."""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from cad.config import Settings
from cad.observability import configure_logging
from tests.conftest import make_settings, start_api


async def test_metrics_token_guards_metrics_when_set(db_url: str, redis_prefix: str) -> None:
    settings: Settings = make_settings(db_url, redis_prefix, metrics_token="scrape-token-0123")
    app, lifespan, client = await start_api(settings, background=False)
    try:
        assert (await client.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert (await client.get("/metrics", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer scrape-token-0123"}
        r = await client.get("/metrics", headers=right)
        assert r.status_code == 200
        assert "cad_" in r.text or "python_" in r.text
        # Liveness stays open: an orchestrator's probe carries no token.
        assert (await client.get("/healthz")).status_code == 200
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_metrics_open_without_a_token(db_url: str, redis_prefix: str) -> None:
    app, lifespan, client = await start_api(make_settings(db_url, redis_prefix), background=False)
    try:
        assert (await client.get("/metrics")).status_code == 200
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


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
