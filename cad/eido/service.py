"""EIDO out and in: an incident as NENA's Emergency Incident Data Object, and a partner's
document as a new incident or an update of one it sent before."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from cad.auth.security import Principal
from cad.calls import service as calls_service
from cad.calls.schemas import CallIn
from cad.eido import repository
from cad.eido.mapping import Agency, from_eido, to_eido
from cad.errors import CADError, Unavailable
from cad.incidents import service as incidents_service
from cad.state import AppState

log = structlog.get_logger(__name__)


class InvalidDocument(CADError):
    """A document the schema refuses: 422 with every error at its JSON pointer."""

    status_code = 422
    code = "invalid"


def agency(state: AppState) -> Agency:
    return Agency(state.settings.eido_agency_id, state.settings.eido_element_id)


async def export(conn: asyncpg.Connection, state: AppState, incident_id: int) -> dict[str, Any]:
    detail = await incidents_service.detail(conn, state, incident_id)
    return to_eido(detail, agency(state), datetime.now(UTC))


_schema_lock = asyncio.Lock()


async def schema(state: AppState) -> Any:
    """NENA's schema, read once per worker on first use (parsing it costs more than an
    app start should), from CAD_EIDO_SCHEMA_DIR or ../shared/standards/eido."""
    from cad.eido.schema import EidoSchema, default_schema_dir

    cached = getattr(state, "eido_schema", None)
    if cached is not None:
        return cached
    async with _schema_lock:
        if getattr(state, "eido_schema", None) is None:
            where = Path(state.settings.eido_schema_dir or default_schema_dir())
            if not (where / "openapi.yaml").is_file():
                raise Unavailable(f"the EIDO schema is not at {where} (CAD_EIDO_SCHEMA_DIR)")
            state.eido_schema = await asyncio.to_thread(EidoSchema.load, where)
    return state.eido_schema


async def check(state: AppState, doc: Any) -> None:
    validator = await schema(state)
    errors = validator.validate(doc)
    if errors:
        raise InvalidDocument(
            f"not a valid EIDO 1.0 document: {len(errors)} schema error(s), the first at "
            f"{errors[0].pointer or '/'}: {errors[0].reason}",
            errors=[{"field": e.pointer or "/", "reason": e.reason} for e in errors],
        )


async def take_in(
    conn: asyncpg.Connection, state: AppState, doc: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    """Apply a validated document. Idempotent on ($id, lastUpdateTimeStamp): a resend
    changes nothing. A known $id with a new time adds the notes not yet taken in."""
    incoming = from_eido(doc)
    await repository.lock_document_id(conn, incoming.eido_id)
    done = await repository.applied(conn, incoming.eido_id, incoming.last_update)
    base = {"eido_id": incoming.eido_id, "source_agency": incoming.source_agency}
    if done is not None:
        return {**base, "incident_id": done["incident_id"], "ref": done["ref"],
                "created": False, "applied": False, "remarks_added": 0}  # fmt: skip
    actor = f"partner:{incoming.source_agency}"[:200]
    incident_id = await repository.incident_for(conn, incoming.eido_id)
    created = incident_id is None
    if incident_id is None:
        incident_id = await _create(conn, state, incoming, principal, actor)
    seen = await repository.new_notes(conn, incident_id, [n for n, _ in incoming.notes])
    added = 0
    for note_id, text in incoming.notes:
        if note_id in seen:
            await incidents_service.add_remark(
                conn, incident_id, f"[{incoming.source_agency}] {text}"[:4000], actor
            )
            added += 1
    await repository.record(
        conn, incoming.eido_id, incoming.last_update, incident_id, incoming.source_agency,
        incoming.source_incident_id, created,
    )  # fmt: skip
    ref = (await incidents_service.get_or_404(conn, incident_id))["ref"]
    log.info("eido.applied", incident_id=incident_id, created=created, remarks=added)
    return {**base, "incident_id": incident_id, "ref": ref, "created": created,
            "applied": True, "remarks_added": added}  # fmt: skip


async def _create(
    conn: asyncpg.Connection, state: AppState, incoming: Any, principal: Principal, actor: str
) -> int:
    point = incoming.point
    described = (
        f"From {incoming.source_agency}"
        + (
            f" (their incident {incoming.source_incident_id})"
            if incoming.source_incident_id
            else ""
        )
        + f": {incoming.type_text}"
    )
    if point is None or not state.areas.contains(*point):
        # Beyond our area, or a civic address only: kept as text, placed at the fallback.
        where = incoming.place_text or (f"{point[0]:.6f}, {point[1]:.6f}" if point else "not given")
        described += f". Partner's location: {where} (outside this service area or not a point)"
        point = (state.settings.eido_fallback_lat, state.settings.eido_fallback_lng)
    now = datetime.now(UTC)
    received = _time(incoming.received_at) or now
    answered = max(_time(incoming.answered_at) or received, received)
    call = CallIn.model_validate(
        {
            "caller": {
                "name": (incoming.caller_name or f"via {incoming.source_agency}")[:200],
                **({"phone": incoming.caller_phone} if incoming.caller_phone else {}),
            },
            "location": {"lat": point[0], "lng": point[1]},
            "location_source": "caller",
            "incident_type": incoming.type_code,
            "description": described[:4000],
            "received_at": min(received, now).isoformat(),
            "answered_at": min(answered, now).isoformat(),
        }
    )
    recorded = await calls_service.record_call(conn, state, call, principal.user_id, actor)
    incident_id = int(recorded["incident"]["id"])
    for received_text, answered_text, phone in incoming.more_calls:
        at = min(_time(received_text) or now, now)
        more = CallIn.model_validate(
            {
                "caller": {"name": f"via {incoming.source_agency}"[:200],
                           **({"phone": phone} if phone else {})},
                "link_to": incident_id,
                "incident_type": incoming.type_code,
                "description": f"Further call, from {incoming.source_agency}",
                "received_at": at.isoformat(),
                "answered_at": max(min(_time(answered_text) or at, now), at).isoformat(),
            }
        )  # fmt: skip
        await calls_service.record_call(conn, state, more, principal.user_id, actor)
    return incident_id


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None
