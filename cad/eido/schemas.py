from __future__ import annotations

from typing import Any

from cad.http import Out


class EidoDocumentOut(Out):
    """A NENA EIDO 1.0 document (EmergencyIncidentDataObjectType in NENA's schema,
    ../shared/standards/eido/openapi.yaml); docs/EIDO.md maps each field to ours."""

    model_config = {"extra": "allow"}

    eidoVersion: str
    issuingElementIdentification: str
    agencyComponent: list[dict[str, Any]]


class EidoImportOut(Out):
    incident_id: int
    ref: str
    eido_id: str
    source_agency: str
    created: bool
    applied: bool
    remarks_added: int
