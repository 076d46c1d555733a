from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from cad.areas.service import desk_areas
from cad.audit import service as audit
from cad.auth.security import Role
from cad.deps import AnyUser, Dispatcher, IdPath, Staff, StateDep, Supervisor, client_of, tx
from cad.errors import Forbidden
from cad.events.schemas import EventOut
from cad.http import JSON, returns
from cad.idempotency import service as idempotency
from cad.incidents import repository as repo
from cad.incidents import service
from cad.incidents.schemas import (
    AssignedOut,
    AssignIn,
    CloseIn,
    IncidentDetailOut,
    IncidentExportOut,
    IncidentOut,
    IncidentRowOut,
    MergeIn,
    OpenBoardPageOut,
    OpenSummaryOut,
    RecommendationsOut,
    RegradeIn,
    RemarkIn,
    ReopenIn,
)
from cad.units import service as units_service

router = APIRouter(prefix="/api/incidents", tags=["incidents"])

StatusFilter = Annotated[
    str | None,
    Query(
        # "open" alone, or a list of statuses.
        pattern=r"^(open|(pending|dispatched|on_scene|closed)(,(pending|dispatched|on_scene|closed))*)$"
    ),
]
GradeFilter = Annotated[str | None, Query(pattern=r"^[A-Z](,[A-Z])*$")]


@router.get("", response_class=JSON, responses=returns(list[IncidentRowOut]))
async def list_incidents(
    state: StateDep,
    _: Staff,
    status: StatusFilter = None,
    grade: GradeFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Any:
    open_only = status == "open"
    statuses = None if status in (None, "open") else status.split(",")
    async with tx(state) as conn:
        rows = await repo.list_incidents(
            conn,
            statuses,
            grade.split(",") if grade else None,
            limit,
            open_only,
            state.directory.grades.codes,
        )
    return [service.incident_out(r, state) for r in rows]


AREAS_DOC = (
    "A desk's boroughs, comma-separated area codes: incidents in them and those in no "
    "borough, as /ws/events?areas= streams them. Absent: all London."
)


@router.get("/open", response_class=JSON, responses=returns(OpenBoardPageOut))
async def open_board(
    state: StateDep,
    _: Staff,
    after_id: Annotated[int, Query(ge=0, lt=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 2000,
    areas: Annotated[str | None, Query(max_length=2000, description=AREAS_DOC)] = None,
) -> Any:
    """Every open incident, in pages by id: a board's snapshot (then it applies events).
    The first page carries the true counts (of what the page's filter shows)."""
    desk = desk_areas(state.areas, areas)
    async with tx(state) as conn:
        return await service.open_board_page(conn, state, after_id, limit, desk)


@router.get("/summary", response_class=JSON, responses=returns(OpenSummaryOut))
async def summary(state: StateDep, _: Staff) -> Any:
    """True counts of open incidents by grade and status, and how many are past target."""
    async with tx(state) as conn:
        return await service.open_summary(conn)


@router.get("/{incident_id}", response_class=JSON, responses=returns(IncidentDetailOut))
async def get_incident(incident_id: IdPath, state: StateDep, principal: AnyUser) -> Any:
    async with tx(state) as conn:
        if principal.role is Role.UNIT:
            # A unit sees only the jobs it has been sent to.
            if not await units_service.unit_has_incident(conn, principal.unit_id, incident_id):
                raise Forbidden("a unit may only see incidents it is assigned to")
        return await service.detail(conn, state, incident_id)


@router.post("/{incident_id}/grade", response_class=JSON, responses=returns(IncidentOut))
async def regrade(
    incident_id: IdPath, body: RegradeIn, state: StateDep, principal: Dispatcher
) -> Any:
    async with tx(state) as conn:
        return await service.regrade(
            conn, state, incident_id, body.grade, body.reason, principal.actor
        )


@router.post(
    "/{incident_id}/remarks",
    status_code=201,
    response_class=JSON,
    responses=returns(EventOut, 201),
)
async def add_remark(
    incident_id: IdPath,
    body: RemarkIn,
    state: StateDep,
    principal: AnyUser,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    """A remark on the incident's record. A unit may remark on its own job (from the unit
    app, maybe queued offline: ``Idempotency-Key`` makes a resend harmless, ``pressed_at``
    keeps when it was written)."""

    async def command() -> tuple[int, Any]:
        if principal.role is Role.UNIT and not await units_service.unit_has_incident(
            conn, principal.unit_id, incident_id
        ):
            raise Forbidden("a unit may only remark on incidents it is assigned to")
        return 201, await service.add_remark(
            conn, incident_id, body.text, principal.actor, pressed_at=body.pressed_at
        )

    async with tx(state) as conn:
        return await idempotency.once(
            conn, principal.user_id, idempotency_key, f"POST /api/incidents/{incident_id}/remarks",
            body.model_dump(mode="json"), command,
        )  # fmt: skip


@router.post("/{incident_id}/close", response_class=JSON, responses=returns(IncidentOut))
async def close(incident_id: IdPath, body: CloseIn, state: StateDep, principal: Dispatcher) -> Any:
    async with tx(state) as conn:
        return await service.close(
            conn, state, incident_id, body.result_code, body.remarks, principal.actor
        )


@router.post("/{incident_id}/reopen", response_class=JSON, responses=returns(IncidentOut))
async def reopen(
    incident_id: IdPath, body: ReopenIn, state: StateDep, principal: Dispatcher
) -> Any:
    async with tx(state) as conn:
        return await service.reopen(conn, state, incident_id, body.reason, principal.actor)


@router.post(
    "/{incident_id}/merge",
    response_class=JSON,
    responses=returns(IncidentOut, description="The surviving incident"),
)
async def merge(incident_id: IdPath, body: MergeIn, state: StateDep, principal: Dispatcher) -> Any:
    async with tx(state) as conn:
        return await service.merge(
            conn, state, incident_id, body.into_id, body.reason, principal.actor
        )


@router.get(
    "/{incident_id}/recommendations", response_class=JSON, responses=returns(RecommendationsOut)
)
async def recommendations(incident_id: IdPath, state: StateDep, _: Dispatcher) -> Any:
    async with tx(state) as conn:
        return await units_service.recommendations(conn, state, incident_id)


@router.post(
    "/{incident_id}/assignments",
    status_code=201,
    response_class=JSON,
    responses=returns(AssignedOut, 201),
)
async def assign(
    incident_id: IdPath, body: AssignIn, state: StateDep, principal: Dispatcher
) -> Any:
    return await units_service.assign(
        state, incident_id, body.unit_id, body.divert, principal.actor
    )


@router.get("/{incident_id}/export", response_class=JSON, responses=returns(IncidentExportOut))
async def export(
    incident_id: IdPath, request: Request, state: StateDep, principal: Supervisor
) -> Any:
    """The incident's complete history, as recorded, for disclosure or audit. Every read
    is in the access log."""
    async with tx(state) as conn:
        body = await service.export(conn, state, incident_id)
        await audit.record_read(conn, "export.read", principal, client_of(request), incident_id)
    return body
