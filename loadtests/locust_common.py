"""What every locust user shares: options, sign-in, the acknowledged-call record.

Runs under gevent: standard library, locust, gevent and websocket-client only. Never
import cad/dispatch/gis or asyncio-based libraries here.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import gevent.lock
from locust import HttpUser, events
from locust.env import Environment

PASSWORDS = {
    "handler": "handler-999",
    "dispatcher": "dispatcher-999",
    "supervisor": "supervisor-999",
    "admin": "admin-999-admin",
    "simulator": "simulator-999",
}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    env = os.environ.get
    parser.add_argument(
        "--ack-file",
        default=env("CAD_LT_ACK_FILE", ""),
        help="append one JSON line per 201 call (call id + Idempotency-Key) for the lost-call check",
    )
    parser.add_argument(
        "--load-profile",
        default=env("CAD_LT_PROFILE", "seattle"),
        choices=["seattle", "montgomery", "flat"],
        help="hourly profile the load shape replays",
    )
    parser.add_argument(
        "--peak-handlers",
        type=int,
        default=int(env("CAD_LT_PEAK_HANDLERS", "20")),
        help="call handlers at the profile's busiest point",
    )
    parser.add_argument(
        "--call-interval",
        type=float,
        default=float(env("CAD_LT_CALL_INTERVAL", "1.0")),
        help="seconds between one handler's calls",
    )
    parser.add_argument(
        "--lt-duration",
        type=float,
        default=float(env("CAD_LT_DURATION", "0")),
        help="seconds the whole profile is compressed into (0: --run-time, else 600)",
    )
    parser.add_argument(
        "--replay-file",
        default=env("CAD_LT_REPLAY_FILE", ""),
        help="call log for locust_replay.py (Montgomery CSV or LFB GeoJSON)",
    )
    parser.add_argument("--replay-speed", type=float, default=float(env("CAD_LT_SPEED", "60")))
    parser.add_argument("--replay-start", default=env("CAD_LT_START", ""))
    parser.add_argument("--replay-limit", type=int, default=int(env("CAD_LT_LIMIT", "0")))


_tokens: dict[str, str] = {}
_token_lock = gevent.lock.BoundedSemaphore(1)


class CadUser(HttpUser):
    """Signs in once per process and username (password hashing is deliberately slow)."""

    abstract = True
    username = "handler"

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {self.token(self.username)}"

    def token(self, username: str) -> str:
        with _token_lock:
            if username not in _tokens:
                password = (
                    os.environ.get(f"CAD_LT_PASSWORD_{username.upper()}") or PASSWORDS[username]
                )
                r = self.client.post(
                    "/api/auth/token",
                    data={"username": username, "password": password},
                    name="/api/auth/token",
                )
                r.raise_for_status()
                _tokens[username] = r.json()["access_token"]
            return _tokens[username]

    @property
    def options(self) -> Any:
        return self.environment.parsed_options

    def post_call(self, body: dict[str, Any], key: str, name: str = "/api/calls") -> None:
        """POST a call; retry a dropped connection with the same key (the server answers the
        first request again), record every 201 for the lost-call check."""
        for attempt in range(4):
            label = name if attempt == 0 else f"{name} (retry)"
            with self.client.post(
                "/api/calls",
                json=body,
                headers={"Idempotency-Key": key},
                name=label,
                catch_response=True,
            ) as r:
                if r.status_code == 201:
                    r.success()
                    data = r.json()
                    record_ack(self.environment, key, data, r.headers.get("Idempotent-Replay"))
                    return
                if r.status_code == 0 or r.status_code in (502, 503, 504):
                    r.failure(f"connection error or {r.status_code}; retrying with the same key")
                    time.sleep(0.2 * (attempt + 1))
                    continue
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return


def new_key() -> str:
    return uuid.uuid4().hex


def record_ack(env: Environment, key: str, data: dict[str, Any], replay: str | None) -> None:
    path = getattr(env.parsed_options, "ack_file", "") if env.parsed_options else ""
    if not path:
        return
    line = json.dumps(
        {
            "key": key,
            "call_id": data["call"]["id"],
            "incident_id": (data.get("incident") or {}).get("id"),
            "replay": bool(replay),
            "t": time.time(),
        }
    )
    # O_APPEND writes of one short line are atomic, so several locust processes can share
    # the file.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
