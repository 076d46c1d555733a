from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from cad.audit import service as audit
from cad.auth.security import Principal, Role
from cad.deps import IdPath, StateDep, client_of, require, tx
from cad.eido import service
from cad.eido.schemas import EidoDocumentOut, EidoImportOut
from cad.errors import Invalid
from cad.http import JSON, returns

router = APIRouter(tags=["eido"])

Exporter = Annotated[Principal, Depends(require(Role.DISPATCHER, Role.SUPERVISOR, Role.PARTNER))]
Importer = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.PARTNER))]


@router.get(
    "/api/incidents/{incident_id}/eido", response_class=JSON, responses=returns(EidoDocumentOut)
)
async def export(
    incident_id: IdPath, request: Request, state: StateDep, principal: Exporter
) -> Any:
    """The incident as a NENA EIDO 1.0 document (valid against NENA's schema): the
    incident, every call and callback, the location as PIDF-LO, every unit sent with the
    times of each step, remarks, agents, merges and warning markers. Every read is in the
    access log."""
    async with tx(state) as conn:
        doc = await service.export(conn, state, incident_id)
        await audit.record_read(conn, "eido.read", principal, client_of(request), incident_id)
    return doc


@router.post("/api/eido", response_class=JSON, responses=returns(EidoImportOut))
async def take_in(state: StateDep, principal: Importer, doc: Annotated[Any, Body()] = None) -> Any:
    """Take in another agency's EIDO: a new incident (graded by our rules from the mapped
    type, the source agency and its incident id recorded), or, for a known `$id`, the
    update (its new notes become remarks). Idempotent on (`$id`, `lastUpdateTimeStamp`):
    a resend changes nothing (`applied: false`). An invalid document is a 422 listing
    every schema error at its JSON pointer."""
    if not isinstance(doc, dict):
        raise Invalid("body", "an EIDO document is a JSON object")
    await service.check(state, doc)
    async with tx(state) as conn:
        return await service.take_in(conn, state, doc, principal)
