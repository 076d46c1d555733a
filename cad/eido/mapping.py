"""Our incident record as a NENA EIDO 1.0 document, and an EIDO document as a call: pure
functions over plain dicts, testable without a database. The vocabulary (types, grades,
statuses) comes from mapping.json, a data file; docs/EIDO.md explains each field."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from html import escape
from importlib import resources
from typing import Any

EIDO_VERSION = "1.0"


@dataclass(frozen=True)
class Vocabulary:
    incident_types: dict[str, str]
    import_default_type: str
    grades: dict[str, dict[str, Any]]
    incident_status: dict[str, str]
    assignment_status: dict[str, str]
    unit_types: dict[str, str]
    marker_severity: dict[str, str]
    call_outcomes: dict[str, str]
    # Read backwards for import.
    type_for_registry: dict[str, str] = field(default_factory=dict)

    def grade_for_priority(self, priority: int | None) -> str | None:
        for code, g in self.grades.items():
            if g["priority"] == priority:
                return code
        return None


@cache
def vocabulary() -> Vocabulary:
    raw = json.loads(resources.files("cad.eido").joinpath("mapping.json").read_text())
    types: dict[str, str] = raw["incident_types"]
    return Vocabulary(
        incident_types=types,
        import_default_type=raw["import_default_type"],
        grades=raw["grades"],
        incident_status=raw["incident_status"],
        assignment_status=raw["assignment_status"],
        unit_types=raw["unit_types"],
        marker_severity=raw["marker_severity"],
        call_outcomes=raw["call_outcomes"],
        type_for_registry={v.casefold(): k for k, v in types.items()},
    )


def _ts(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else value.isoformat()


def urn(kind: str, local_id: object, agency: str) -> str:
    """NENA's form for identifiers: urn:emergency:uid:<kind>:<id>:<agency domain>."""
    return f"urn:emergency:uid:{kind}:{local_id}:{agency}"


def pidf_lo(entity: str, lat: float, lng: float, at: str) -> str:
    """A point as PIDF-LO (RFC 4119 / 5491): gml:Point in WGS 84, "lat lng"."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
        'xmlns:gml="http://www.opengis.net/gml" '
        f'entity="{escape(entity)}"><tuple id="location"><status><gp:geopriv>'
        '<gp:location-info><gml:Point srsName="urn:ogc:def:crs:EPSG::4326">'
        f"<gml:pos>{lat:.7f} {lng:.7f}</gml:pos></gml:Point></gp:location-info>"
        "<gp:usage-rules/><gp:method>Manual</gp:method></gp:geopriv></status>"
        f"<timestamp>{escape(at)}</timestamp></tuple></presence>"
    )


_POS = re.compile(r"<(?:[\w-]+:)?pos(?:\s[^>]*)?>\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)")
_CIVIC = re.compile(
    r"<(?:[\w-]+:)?(country|A1|A2|A3|A4|A5|A6|PRD|RD|STS|POD|HNO|HNS|LMK|NAM|PC)>([^<]*)<"
)


def point_of(location_by_value: str) -> tuple[float, float] | None:
    """The first gml:pos of a PIDF-LO document (a regular expression, not an XML parser:
    a partner's document never gets to resolve entities here)."""
    m = _POS.search(location_by_value)
    if not m:
        return None
    try:
        lat, lng = float(m.group(1)), float(m.group(2))
    except ValueError:
        return None
    if -90 <= lat <= 90 and -180 <= lng <= 180:
        return lat, lng
    return None


def civic_text(location_by_value: str) -> str | None:
    """A civic address (RFC 5139) as one line: "42 W Cellular Street, Wilmington, DE, US"."""
    parts = {k: v.strip() for k, v in _CIVIC.findall(location_by_value) if v.strip()}
    if not parts:
        return None
    street = " ".join(parts[k] for k in ("HNO", "HNS", "PRD", "RD", "STS", "POD") if k in parts)
    rest = [parts[k] for k in ("LMK", "NAM", "A6", "A5", "A4", "A3", "A2", "A1", "PC", "country")
            if k in parts]  # fmt: skip
    return ", ".join(p for p in [street, *rest] if p)


@dataclass(frozen=True)
class Agency:
    """Who we are in EIDO: a domain-like id (CAD_EIDO_AGENCY_ID) and the element name."""

    agency_id: str
    element_id: str


def to_eido(detail: dict[str, Any], agency: Agency, now: datetime) -> dict[str, Any]:
    """The EIDO document of one incident (the dict of GET /api/incidents/{id})."""
    v = vocabulary()
    aid = agency.agency_id
    updated = _ts(detail.get("updated_at")) or now.isoformat()

    def prologue(component_id: str, at: Any = None, agent: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "$id": component_id,
            "lastUpdateTimeStamp": _ts(at) or updated,
            "updatedByAgencyReference": {"$ref": aid},
        }
        if agent:
            out["updatedByAgentReference"] = {"$ref": agent_id(agent)}
        return out

    agents: dict[str, dict[str, Any]] = {}

    def agent_id(actor: str) -> str:
        role, _, name = actor.partition(":")
        ref = f"{name or role}.{role}@{aid}" if name else f"{role}@{aid}"
        if ref not in agents:
            agents[ref] = {
                **prologue(ref),
                "agentRoleRegistryText": [_agent_role(role)],
                "agencyReference": {"$ref": aid},
            }
        return ref

    incident_id = detail["id"]
    incident_urn = urn("incidentid", incident_id, aid)
    location_id = urn("locationid", f"incident-{incident_id}", aid)
    grade = detail.get("grade")
    grade_info = v.grades.get(grade or "", {})
    type_code = detail.get("type_code", "")
    incident: dict[str, Any] = {
        **prologue(incident_urn),
        "incidentTypeCommonRegistryText": v.incident_types.get(type_code, "Police.Other"),
        "incidentTypeInternalCode": type_code,
        "incidentTypeInternalText": detail.get("type_name") or type_code,
        "incidentStatusCommonRegistryText": [v.incident_status.get(detail["status"], "Open")],
        "incidentStatusInternalText": [detail["status"]],
        "internalIncidentId": detail.get("ref") or str(incident_id),
        "incidentPriorityInternalText": grade or "",
        "locationReference": [{"$ref": location_id}],
    }
    if grade_info:
        incident["incidentCommonPriorityNumber"] = grade_info["priority"]
    if detail.get("area"):
        incident["beatOrDispatchGroupText"] = str(detail["area"])
    if detail.get("result_code"):
        incident["dispositionComponent"] = [
            {
                **prologue(urn("dispositionid", incident_id, aid), detail.get("closed_at")),
                "dispositionCommonRegistryCode": detail["result_code"],
                "dispositionPrimaryIndicator": True,
            }
        ]
    line = detail.get("address_line") or detail.get("location_label")
    locations: list[dict[str, Any]] = [
        {
            **prologue(location_id, detail.get("created_at")),
            "locationTypeDescriptionRegistryText": "IncidentLocation",
            "locationByValue": pidf_lo(incident_urn, detail["lat"], detail["lng"], updated),
            **({"locationDescriptionText": line} if line else {}),
        }
    ]
    calls: list[dict[str, Any]] = []
    callbacks: list[dict[str, Any]] = []
    for call in detail.get("calls", []):
        call_urn = urn("callid", call["id"], aid)
        call_location = urn("locationid", f"call-{call['id']}", aid)
        locations.append(
            {
                **prologue(call_location, call.get("created_at")),
                "locationTypeDescriptionRegistryText": "CallerLocation",
                "locationByValue": pidf_lo(call_urn, call["lat"], call["lng"],
                                           _ts(call["received_at"]) or updated),
                **({"locationDescriptionText": call["location_label"] or call["address"]}
                   if call.get("location_label") or call.get("address") else {}),
            }
        )  # fmt: skip
        entry: dict[str, Any] = {
            **prologue(call_urn, call.get("created_at")),
            "standardPrimaryCallType": "emergency",
            "localCallType": call.get("type_code") or type_code,
            "direction": "incoming",
            "priorityIdentifier": grade_info.get("call_priority", "normal"),
            "callStartTimestamp": _ts(call["received_at"]),
            "answerDate": _ts(call["answered_at"]),
            "callStateRegistryText": v.call_outcomes.get(call.get("outcome", ""), "callAnswered"),
            "locationReference": [{"$ref": call_location}],
        }
        if call.get("caller_phone"):
            cb_id = urn("callbackid", call["id"], aid)
            digits = re.sub(r"[^0-9+]", "", call["caller_phone"])
            callbacks.append({**prologue(cb_id, call.get("created_at")),
                              "callBackInformationUri": [f"tel:{digits}"]})  # fmt: skip
            entry["callBackReference"] = {"$ref": cb_id}
        calls.append(entry)
    resources_: list[dict[str, Any]] = []
    for a in detail.get("assignments", []):
        actor = a.get("assigned_by") or ""
        times = {k: _ts(a.get(k)) for k in ("dispatched_at", "acknowledged_at", "en_route_at",
                                            "on_scene_at", "cleared_at")}  # fmt: skip
        resources_.append(
            {
                **prologue(urn("resourceid", a["id"], aid), a.get("cleared_at")
                           or a.get("on_scene_at") or a.get("dispatched_at")),
                "emergencyResourceTypeCommonRegistryText":
                    v.unit_types.get(a.get("unit_type", ""), "Police.Unit"),
                "emergencyResourceTypeInternalText": a.get("unit_type", ""),
                "resourceAttributeRegistryText": [a.get("unit_type", "")],
                "emergencyResourceName": a["callsign"],
                "primaryUnitStatusRegistryText":
                    v.assignment_status.get(a["status"], a["status"]),
                "secondaryUnitStatusRegistryText": [],
                # Each step's time, as "step=timestamp", in the order they happen.
                "unitStatusInternal": [f"{k[:-3]}={t}" for k, t in times.items() if t],
                "agentReference": [{"$ref": agent_id(actor or "engine:auto")}],
                "activeOnIncidentId": incident_urn,
            }
        )  # fmt: skip
    notes: list[dict[str, Any]] = []
    for e in detail.get("timeline", []):
        if e["type"] != "incident.remark":
            continue
        notes.append(
            {
                **prologue(urn("noteid", e["seq"], aid), e["at"], e["actor"]),
                "notesActionComments": str(e["data"].get("text", "")),
                "agentReference": {"$ref": agent_id(e["actor"])},
            }
        )
    cautions: list[dict[str, Any]] = []
    for m in detail.get("markers", []):
        cautions.append(
            {
                **prologue(urn("cautionid", m["id"], aid), m.get("updated_at")),
                "cautionTypeInternalText": m["category"],
                "cautionTypeCommonRegistryText": m.get("category_name") or m["category"],
                "cautionSeverity": v.marker_severity.get(m.get("severity", ""), "normal"),
                "cautionSource": m.get("author", ""),
                "startDate": _ts(m.get("created_at")),
            }
        )
    merges: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    for e in detail.get("timeline", []):
        if e["type"] not in ("incident.merged", "incident.merged_in"):
            continue
        other = e["data"]["into_id"] if e["type"] == "incident.merged" else e["data"]["from_id"]
        other_urn = urn("incidentid", other, aid)
        direction = "REPLACED" if e["type"] == "incident.merged" else "REPLACING"
        merges.append({**prologue(urn("mergeid", e["seq"], aid), e["at"], e["actor"]),
                       "incidentTrackingIdentifier": other_urn,
                       "incidentMergeDirectionCode": direction})  # fmt: skip
        links.append({**prologue(urn("linkid", e["seq"], aid), e["at"], e["actor"]),
                      "incidentTrackingIdentifier": other_urn,
                      "transactionReasonText": str(e["data"].get("reason") or "merged"),
                      "linkDirectionCode": "CHILD" if direction == "REPLACED" else "PARENT"})  # fmt: skip
    for e in detail.get("timeline", []):
        agent_id(e["actor"])  # everyone who acted on it is an agent of the document
    doc: dict[str, Any] = {
        **prologue(incident_urn),
        "eidoVersion": EIDO_VERSION,
        "issuingElementIdentification": agency.element_id,
        "agencyComponent": [
            {
                **prologue(aid),
                "agencyRoleDescriptionRegistryText": ["CallReceiving", "Dispatching"],
                "agencyType": ["police"],
                "incidentOwningAgencyIndicator": True,
            }
        ],
        "incidentComponent": incident,
        "callComponent": calls,
        "locationComponent": locations,
        "emergencyResourceComponent": resources_,
        "notesComponent": notes,
        "agentComponent": list(agents.values()),
    }
    for key, items in (("callbackComponent", callbacks), ("cautionComponent", cautions),
                       ("mergeComponent", merges), ("linkComponent", links)):  # fmt: skip
        if items:
            doc[key] = items
    return doc


def _agent_role(role: str) -> str:
    return {
        "call_handler": "Call Taking",
        "dispatcher": "Dispatching",
        "supervisor": "Supervising",
        "unit": "Responding",
        "admin": "Administering",
        "engine": "Automatic Dispatch",
    }.get(role, "Other")


@dataclass(frozen=True)
class Incoming:
    """What an EIDO document from a partner says, in our terms."""

    eido_id: str
    last_update: str
    source_agency: str
    source_incident_id: str | None
    type_code: str
    type_text: str
    grade: str | None
    point: tuple[float, float] | None
    place_text: str | None
    caller_name: str | None
    caller_phone: str | None
    received_at: str | None
    answered_at: str | None
    # (note $id, text), in document order: the partner's notes and, as notes, its units
    # with the times of each step.
    notes: list[tuple[str, str]]
    # The calls after the first: (received, answered, phone).
    more_calls: list[tuple[str | None, str | None, str | None]] = field(default_factory=list)


def _ref(value: Any) -> str | None:
    return value.get("$ref") if isinstance(value, dict) else None


def from_eido(doc: dict[str, Any]) -> Incoming:
    """Read a document that has passed schema validation."""
    v = vocabulary()
    incident = doc.get("incidentComponent") or {}
    registry = str(incident.get("incidentTypeCommonRegistryText") or "")
    internal = str(incident.get("incidentTypeInternalCode") or "")
    type_code = (
        internal
        if internal in v.incident_types
        else v.type_for_registry.get(registry.casefold(), v.import_default_type)
    )
    priority = incident.get("incidentCommonPriorityNumber")
    grade = v.grade_for_priority(priority if isinstance(priority, int) else None)
    locations = {loc["$id"]: loc for loc in doc.get("locationComponent", [])}
    wanted = [r for r in map(_ref, incident.get("locationReference", [])) if r]
    calls = doc.get("callComponent", [])
    for call in calls:
        wanted += [r for r in map(_ref, call.get("locationReference", [])) if r]
    ordered = [locations[r] for r in wanted if r in locations] + list(locations.values())
    point: tuple[float, float] | None = None
    place: str | None = None
    for loc in ordered:
        by_value = str(loc.get("locationByValue") or "")
        point = point or point_of(by_value)
        place = place or loc.get("locationDescriptionText") or civic_text(by_value)
    callbacks = {c["$id"]: c for c in doc.get("callbackComponent", [])}

    def phone_of(call: dict[str, Any]) -> str | None:
        cb = callbacks.get(_ref(call.get("callBackReference")) or "")
        for uri in (cb or {}).get("callBackInformationUri", []):
            if str(uri).startswith("tel:"):
                return re.sub(r"[^0-9+ ()-]", "", str(uri)[4:])[:40] or None
        return None

    first_call = calls[0] if calls else {}
    caller_name, caller_phone = None, phone_of(first_call)
    agency = _ref(doc.get("updatedByAgencyReference")) or "unknown"
    notes = [(str(n["$id"]), str(n.get("notesActionComments", "")))
             for n in doc.get("notesComponent", []) if n.get("notesActionComments")]  # fmt: skip
    for r in doc.get("emergencyResourceComponent", []):
        steps = ", ".join(str(s) for s in r.get("unitStatusInternal", []))
        name = r.get("emergencyResourceName") or r["$id"]
        text = (f"unit {name} ({r.get('emergencyResourceTypeCommonRegistryText', '')}): "
                f"{r.get('primaryUnitStatusRegistryText', '')}" + (f"; {steps}" if steps else ""))  # fmt: skip
        # A unit's note changes with its status: each state of it is taken in once.
        notes.append((f"{r['$id']}#{r.get('primaryUnitStatusRegistryText', '')}#{steps}", text))
    return Incoming(
        eido_id=str(doc["$id"]),
        last_update=str(doc["lastUpdateTimeStamp"]),
        source_agency=str(agency),
        source_incident_id=incident.get("internalIncidentId"),
        type_code=type_code,
        type_text=str(incident.get("incidentTypeInternalText") or registry or "not given"),
        grade=grade,
        point=point,
        place_text=place,
        caller_name=caller_name,
        caller_phone=caller_phone,
        received_at=first_call.get("callStartTimestamp"),
        answered_at=first_call.get("answerDate") or first_call.get("callStartTimestamp"),
        notes=notes,
        more_calls=[
            (c.get("callStartTimestamp"), c.get("answerDate"), phone_of(c)) for c in calls[1:]
        ],
    )
