"""Structured logs with a request id, Prometheus metrics, and request guards (pure ASGI)."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from typing import Any

import orjson
import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("cad_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "cad_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_FANNED = Counter("cad_ws_events_sent_total", "Events sent to WebSocket clients")
WS_CLIENTS_DROPPED = Counter("cad_ws_clients_dropped_total", "Slow WebSocket clients dropped")
CALLS_ACCEPTED = Counter("cad_calls_accepted_total", "Calls recorded (201)", ["grade"])
ASSIGNMENTS = Counter("cad_assignments_total", "Assignments committed", ["auto"])
ASSIGN_CONFLICTS = Counter("cad_assignment_conflicts_total", "Assignments refused with 409")


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    """JSON lines for machines; ``json=None`` picks readable lines on a terminal."""
    if json is None:
        json = not sys.stdout.isatty()
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level.upper())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o).decode())
        if json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        cache_logger_on_first_use=True,
    )


class RequestContextMiddleware:
    """Request id on every log line and response; metrics per route; body size limit."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await _reject_too_large(send, request_id, self.max_body_bytes)
            return
        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        status = 500
        start = time.perf_counter()

        rejected = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, rejected
            if too_large:
                # FastAPI turns the cut-off body into its own 400 ("error parsing the
                # body"); answer what really happened instead, once.
                if not rejected and message["type"] == "http.response.start":
                    rejected = True
                    status = 413
                    await _reject_too_large(send, request_id, self.max_body_bytes)
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except _BodyTooLarge:
            if too_large and not rejected:
                await _reject_too_large(send, request_id, self.max_body_bytes)
                status = 413
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - start
            REQUESTS.labels(scope["method"], path, str(status)).inc()
            LATENCY.labels(scope["method"], path).observe(elapsed)


class _BodyTooLarge(Exception):
    pass


async def _reject_too_large(send: Send, request_id: str, limit: int) -> None:
    body = orjson.dumps({"detail": f"request body larger than {limit} bytes", "code": "too_large"})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-request-id", request_id.encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
