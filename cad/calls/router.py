from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from cad.calls import service
from cad.calls.schemas import CallIn, CallRecordedOut, GradePreviewIn, GradePreviewOut
from cad.deps import Handler, StateDep, one_statement, tx
from cad.http import JSON, returns
from cad.idempotency import service as idempotency
from cad.observability import CALLS_ACCEPTED

router = APIRouter(prefix="/api/calls", tags=["calls"])

ROUTE = "POST /api/calls"


@router.post("", status_code=201, response_class=JSON, responses=returns(CallRecordedOut, 201))
async def record_call(
    body: CallIn,
    request: Request,
    state: StateDep,
    principal: Handler,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    """Record a 999 call: a new incident, or a link to an existing one (``link_to``)."""
    if state.limiter is not None:
        await state.limiter.check(principal.user_id, "calls")
    if service.makes_new_incident(body):
        claim = idempotency.claim_for(
            principal.user_id, idempotency_key, ROUTE, body.model_dump(mode="json")
        )
        assert body.location is not None
        spot = service.point_spot(state, body.location)
        if spot is None:  # an address: the gazetteer first
            async with one_statement(state) as conn:
                spot = await service.find_spot(conn, state, body.location)
        # Read and written in the worker's shared statements, holding no connection
        # while it waits for them.
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


@router.post("/grade-preview", response_class=JSON, responses=returns(GradePreviewOut))
async def grade_preview(body: GradePreviewIn, state: StateDep, _: Handler) -> Any:
    """The grade a call would get, and the rule that sets it (nothing is written).

    With a location it also lists likely duplicates, so the handler can link the call to
    an existing incident before a second incident is created."""
    async with tx(state) as conn:
        return await service.preview(conn, state, body)
