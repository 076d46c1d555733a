from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cad.auth.security import Principal
from cad.calls import service
from cad.calls.schemas import CallIn, CallRecordedOut, GradePreviewIn, GradePreviewOut
from cad.deps import (
    HANDLER_ROLES,
    Handler,
    StateDep,
    bearer_principal,
    one_statement,
    state_of,
    tx,
)
from cad.http import JSON, returns
from cad.idempotency import service as idempotency
from cad.observability import CALLS_ACCEPTED
from cad.state import AppState

router = APIRouter(prefix="/api/calls", tags=["calls"])

PATH = "/api/calls"
ROUTE = "POST /api/calls"


class IntakeShortcut:
    """POST /api/calls, which every 999 call takes, straight to its handler: past the
    route matching and dependency solving (in process: ~130 µs of dependency solving
    against ~20 µs for the same token, body and header taken here; under cProfile the
    router took about a tenth of a worker's CPU, though `make bench` shows no gain
    outside its noise of a few percent). Installed innermost of the app's middleware, so every middleware
    (request id, metrics, body limit, CORS, trusted hosts, security headers, the 500
    handler) still sees the request, and the app's exception handlers answer what the
    handler raises, as they would on the route.

    Only the common request is taken: a bearer token that passes and a JSON body that
    validates. Anything else (a cookie, a token refused, a body that fails, another
    content type) goes on to the route, with the body as read, and FastAPI answers it,
    error included, as it answers every other route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        (self.route,) = [
            r
            for r in router.routes
            if isinstance(r, APIRoute) and r.path == PATH and "POST" in (r.methods or ())
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or _route_path(scope) != PATH:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        principal = bearer_principal(request, HANDLER_ROLES)
        if principal is None or not _is_json(request):
            await self.app(scope, receive, send)  # nothing read yet
            return
        raw = await request.body()
        body = _call_body(raw)
        if body is None:
            await self.app(scope, _replayed(raw, receive), send)
            return
        scope["route"] = self.route  # what the router would have set (the metrics' label)
        scope["endpoint"] = self.route.endpoint
        scope["path_params"] = {}
        try:
            response = await _record(
                body, state_of(request), principal, request.headers.get("idempotency-key")
            )
        except Exception as exc:
            handler = _handler_for(scope["app"].exception_handlers, exc)
            if handler is None:  # the 500 handler's, outside
                raise
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:  # as Starlette runs a plain def handler
                response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _replayed(body: bytes, receive: Receive) -> Receive:
    """``receive`` as the route's handler must see it: the body read first, then the
    rest of the connection (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _handler_for(
    handlers: Mapping[Any, Callable[..., Any]], exc: Exception
) -> Callable[..., Any] | None:
    """The app's handler for ``exc`` as Starlette's ExceptionMiddleware finds it (a status
    code's for an HTTPException, then the nearest class), leaving what Starlette gives
    the server-error middleware outside (the handlers for 500 and for Exception itself)
    to it, as the route would."""
    if (
        isinstance(exc, StarletteHTTPException)
        and exc.status_code != 500
        and exc.status_code in handlers
    ):
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("application/json")


def _call_body(raw: bytes) -> CallIn | None:
    """The body as FastAPI would validate it (parsed JSON, then the model); None when it
    fails, for the route to answer."""
    try:
        return CallIn.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError):
        return None


async def record_call(
    body: CallIn,
    state: StateDep,
    principal: Handler,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Record a 999 call: a new incident, or a link to an existing one (``link_to``)."""
    return await _record(body, state, principal, idempotency_key)


router.add_api_route(
    "",
    record_call,
    methods=["POST"],
    status_code=201,
    response_class=JSON,
    responses=returns(CallRecordedOut, 201),
)


async def _record(
    body: CallIn, state: AppState, principal: Principal, idempotency_key: str | None
) -> Response:
    if service.makes_new_incident(body):
        assert state.intake is not None
        with state.intake.call():
            return await _record_new(body, state, principal, idempotency_key)
    if state.limiter is not None:
        await state.limiter.check(principal.user_id, "calls")
    recorded: dict[str, Any] = {}

    async def command() -> tuple[int, Any]:
        recorded.update(await service.record_call(conn, state, body, principal.user_id,
                                                  principal.actor))  # fmt: skip
        return 201, recorded

    async with tx(state) as conn:
        response = await idempotency.once(
            conn, principal.user_id, idempotency_key, ROUTE,
            body.model_dump(mode="json"), command,
        )  # fmt: skip
    if recorded:  # not a replay: counted once, when first accepted
        incident = recorded.get("incident")
        CALLS_ACCEPTED.labels(incident["grade"] if incident else "none").inc()
    return response


async def _record_new(
    body: CallIn, state: AppState, principal: Principal, idempotency_key: str | None
) -> Response:
    if state.limiter is not None:
        await state.limiter.check(principal.user_id, "calls")
    claim = idempotency.claim_for(
        principal.user_id, idempotency_key, ROUTE, body.model_dump(mode="json")
    )
    assert body.location is not None
    spot = service.point_spot(state, body.location)
    if spot is None:  # an address: the gazetteer first
        async with one_statement(state) as conn:
            spot = await service.find_spot(conn, state, body.location)
    # Read and written in the worker's shared statements, holding no connection while it
    # waits for them.
    prepared = await service.prepare_new_incident(
        None, state, body, principal.user_id, principal.actor, claim, spot=spot
    )
    new = await service.commit_new_incident(state, prepared)
    if new is None:
        assert claim is not None
        async with one_statement(state) as conn:
            return idempotency.replay_response(await idempotency.stored_answer(conn, claim))
    CALLS_ACCEPTED.labels(new.grade).inc()
    return Response(new.content, status_code=201, media_type="application/json")


@router.post("/grade-preview", response_class=JSON, responses=returns(GradePreviewOut))
async def grade_preview(body: GradePreviewIn, state: StateDep, _: Handler) -> Any:
    """The grade a call would get, and the rule that sets it (nothing is written).

    With a location it also lists likely duplicates, so the handler can link the call to
    an existing incident before a second incident is created."""
    async with tx(state) as conn:
        return await service.preview(conn, state, body)
