"""NENA's EIDO 1.0 schema, read from ../shared/standards/eido, as the import route and the
export tests use it: NENA's own sample passes, broken documents fail at the right
pointer, and the official file's quirks are handled at load."""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cad.config import Settings
from cad.eido.schema import MAX_ERRORS, EidoSchema, SchemaError, SchemaLoadError, default_schema_dir
from tests.conftest import ROOT

EIDO_DIR = ROOT.parent / "shared" / "standards" / "eido"
QUIRK = (
    "openapi.yaml#/components/schemas/AgentType/allOf/1/properties/agentRoleRegistryText/minItems"
)
STAMP = "2021-04-30T14:40:00.0-04:00"


def _standard(name: str) -> Path:
    path = EIDO_DIR / name
    if not path.exists():
        pytest.fail(f"NENA's EIDO file {path} is missing: tests read ../shared/standards/eido")
    return path


@pytest.fixture(scope="module")
def schema() -> EidoSchema:
    return EidoSchema.load(_standard("openapi.yaml").parent)


@pytest.fixture
def sample() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_standard("sample_call_transfer_eido.json").read_text())
    return doc


def _component(**fields: Any) -> dict[str, Any]:
    """The prologue every EIDO component carries, and the fields given."""
    return {
        "$id": "urn:test:component",
        "lastUpdateTimeStamp": STAMP,
        "updatedByAgencyReference": {"$ref": "state.pa.us"},
        **fields,
    }


def test_the_default_directory_is_beside_the_checkout() -> None:
    assert default_schema_dir() == EIDO_DIR
    assert Settings().eido_schema_dir is None
    assert Settings(eido_schema_dir="/srv/eido").eido_schema_dir == "/srv/eido"


def test_nenas_sample_is_valid(schema: EidoSchema, sample: dict[str, Any]) -> None:
    assert schema.validate(sample) == []


def test_an_empty_document_names_every_missing_required_property(schema: EidoSchema) -> None:
    errors = schema.validate({})
    assert {e.pointer for e in errors} == {""}
    reasons = " ".join(e.reason for e in errors)
    # The prologue (every component's) and the document's own three.
    for name in (
        "$id", "lastUpdateTimeStamp", "updatedByAgencyReference",
        "eidoVersion", "issuingElementIdentification", "agencyComponent",
    ):  # fmt: skip
        assert f"'{name}'" in reasons
    assert len(errors) == 6


@pytest.mark.parametrize("doc", [None, [], "eido", 1.0])
def test_a_document_that_is_not_an_object_is_refused_at_the_root(
    schema: EidoSchema, doc: object
) -> None:
    assert schema.validate(doc) == [SchemaError("", f"expected object, got {_json_type(doc)}")]


def _json_type(value: object) -> str:
    return {type(None): "null", list: "array", str: "string", float: "number"}[type(value)]


@pytest.mark.parametrize(
    ("change", "pointer", "reason"),
    [
        # A reference whose "$ref" is a number: "$ref" is a property name here, not a
        # schema reference, so it must be checked like any other.
        (
            lambda d: d["callComponent"][0]["agentReference"][0].update({"$ref": 42}),
            "/callComponent/0/agentReference/0/$ref",
            "expected string, got integer",
        ),
        # Two files deep: nc.yaml's PersonType, then niem-xs.yaml's string.
        (
            lambda d: d["personComponent"][0].update(
                {"ncPersonComponent": {"accent": [{"value": 7}]}}
            ),
            "/personComponent/0/ncPersonComponent/accent/0/value",
            "expected string, got integer",
        ),
        # Reached through NENA's "NIEMComponents//j.yaml" reference (double slash).
        (
            lambda d: d.update(
                vehicleComponent=[
                    _component(
                        vehicleRelationshipType=["Involved"],
                        vehicleRelationshipTimeStamp=STAMP,
                        jCommercialVehicleComponent={"prismTargetDate": "2021-04-30"},
                    )
                ]
            ),
            "/vehicleComponent/0/jCommercialVehicleComponent/prismTargetDate",
            "expected array, got string",
        ),
        (
            lambda d: d["callComponent"][0].update(callStartTimestamp="30/04/2021 14:40"),
            "/callComponent/0/callStartTimestamp",
            "must be an RFC 3339 date-time",
        ),
        (
            lambda d: d["callComponent"][0].update(answerDate=None),
            "/callComponent/0/answerDate",
            "expected string, got null",
        ),
        (lambda d: d.update(eidoVersion="2.0"), "/eidoVersion", "must be one of '1.0'"),
        # NENA types incidentComponent as one object, unlike every other component.
        (
            lambda d: d.update(incidentComponent=[_component(incidentTypeCommonRegistryText="x")]),
            "/incidentComponent",
            "expected object, got array",
        ),
    ],
)
def test_a_wrong_value_deep_inside_is_reported_exactly_where_it_is(
    schema: EidoSchema, sample: dict[str, Any], change: Any, pointer: str, reason: str
) -> None:
    broken = copy.deepcopy(sample)
    change(broken)
    assert schema.validate(broken) == [SchemaError(pointer, reason)]
    assert schema.validate(sample) == []


def test_errors_come_in_document_order(schema: EidoSchema, sample: dict[str, Any]) -> None:
    doc = copy.deepcopy(sample)
    calls = doc["callComponent"]
    calls.extend(copy.deepcopy(calls[0]) for _ in range(10))
    calls[10]["queueIdentifier"] = 10
    calls[2]["queueIdentifier"] = 2
    doc["agencyComponent"][0]["agencyType"] = "psap"
    assert [e.pointer for e in schema.validate(doc)] == [
        "/agencyComponent/0/agencyType",
        "/callComponent/2/queueIdentifier",
        "/callComponent/10/queueIdentifier",
    ]
    # Two reasons at one place are two errors, the reasons in order.
    calls[2]["direction"] = 2
    assert [e.reason for e in schema.validate(doc) if e.pointer.endswith("direction")] == [
        "expected string, got integer",
        "must be one of 'incoming', 'outgoing', 'internal'",
    ]


def test_the_minitems_quirk_is_read_as_the_integer_one(
    schema: EidoSchema, sample: dict[str, Any]
) -> None:
    # NENA's line 218 reads `minItems: 1,`; YAML makes that the string "1,".
    assert schema.normalised == (QUIRK,)
    role = schema.component("AgentType")["allOf"][1]["properties"]["agentRoleRegistryText"]
    assert role["minItems"] == 1 and type(role["minItems"]) is int
    # And it is enforced as one.
    doc = copy.deepcopy(sample)
    doc["agentComponent"][0]["agentRoleRegistryText"] = []
    assert schema.validate(doc) == [
        SchemaError("/agentComponent/0/agentRoleRegistryText", "must hold at least 1 item")
    ]


def test_component_gives_a_copy(schema: EidoSchema, sample: dict[str, Any]) -> None:
    schema.component("EmergencyIncidentDataObjectType")["allOf"][1]["required"].clear()
    assert len(schema.validate({})) == 6


def test_loading_twice_gives_independent_working_validators(
    schema: EidoSchema, sample: dict[str, Any]
) -> None:
    again = EidoSchema.load(EIDO_DIR)
    assert again is not schema and again._validator is not schema._validator
    assert again.validate(sample) == [] == schema.validate(sample)
    assert again.validate({}) == schema.validate({})


def test_validating_the_sample_again_and_again_and_from_threads(
    schema: EidoSchema, sample: dict[str, Any]
) -> None:
    broken = copy.deepcopy(sample)
    broken["eidoVersion"] = 1
    expected = [
        SchemaError("/eidoVersion", "expected string, got integer"),
        SchemaError("/eidoVersion", "must be one of '1.0'"),
    ]
    for _ in range(20):
        assert schema.validate(sample) == []
    docs = [sample, broken] * 20
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(schema.validate, docs))
    assert results == [[], expected] * 20


def test_errors_are_capped(schema: EidoSchema, sample: dict[str, Any]) -> None:
    doc = copy.deepcopy(sample)
    doc["callComponent"] = [7] * (MAX_ERRORS + 50)
    errors = schema.validate(doc)
    assert len(errors) == MAX_ERRORS
    assert errors[0] == SchemaError("/callComponent/0", "expected object, got integer")
    assert errors[-1].pointer == f"/callComponent/{MAX_ERRORS - 1}"


def test_a_document_too_deep_to_check_is_refused_not_raised(
    schema: EidoSchema, sample: dict[str, Any]
) -> None:
    # NIEM's PersonType reaches itself (injury → causerPerson): a small document can
    # nest past Python's recursion limit.
    person: dict[str, Any] = {}
    inner = person
    for _ in range(300):
        inner["injury"] = [{"causerPerson": [{}]}]
        inner = inner["injury"][0]["causerPerson"][0]
    doc = copy.deepcopy(sample)
    doc["personComponent"][0]["ncPersonComponent"] = person
    assert schema.validate(doc) == [SchemaError("", "nested too deeply to check")]


# Small schemas of our own, in the shape of NENA's, for what the real one cannot show.


def _write_schema(directory: Path, document_type: dict[str, Any], **niem: dict[str, Any]) -> Path:
    (directory / "NIEMComponents").mkdir(parents=True)
    openapi = {
        "openapi": "3.0.2",
        "components": {"schemas": {"EmergencyIncidentDataObjectType": document_type}},
    }
    # JSON is YAML: the files need no YAML writer.
    (directory / "openapi.yaml").write_text(json.dumps(openapi))
    for name, schemas in niem.items():
        text = json.dumps({"components": {"schemas": schemas}})
        (directory / "NIEMComponents" / f"{name}.yaml").write_text(text)
    return directory


def test_a_missing_directory_fails_to_load(tmp_path: Path) -> None:
    with pytest.raises(SchemaLoadError, match="CAD_EIDO_SCHEMA_DIR"):
        EidoSchema.load(tmp_path / "nowhere")


def test_a_reference_that_does_not_resolve_fails_to_load(tmp_path: Path) -> None:
    where = _write_schema(
        tmp_path,
        {"properties": {"a": {"$ref": "NIEMComponents/nc.yaml#/components/schemas/missing"}}},
        nc={"ncTextType": {"type": "string"}},
    )
    with pytest.raises(SchemaLoadError, match="does not resolve"):
        EidoSchema.load(where)


def test_a_keyword_that_is_not_a_number_fails_to_load(tmp_path: Path) -> None:
    where = _write_schema(tmp_path, {"type": "array", "minItems": "one"})
    with pytest.raises(SchemaLoadError, match="minItems"):
        EidoSchema.load(where)


def test_only_numeric_keywords_written_with_a_comma_are_normalised(tmp_path: Path) -> None:
    where = _write_schema(
        tmp_path,
        {
            "type": "object",
            "properties": {
                # A property *named* minItems, whose allowed value is the string "1,".
                "minItems": {"type": "string", "enum": ["1,"], "maxLength": " 2, "},
                "tags": {"type": "array", "minItems": "1,", "maxItems": 3},
            },
        },
    )
    loaded = EidoSchema.load(where)
    assert loaded.normalised == (
        "openapi.yaml#/components/schemas/EmergencyIncidentDataObjectType/properties/minItems/maxLength",
        "openapi.yaml#/components/schemas/EmergencyIncidentDataObjectType/properties/tags/minItems",
    )
    assert loaded.validate({"minItems": "1,", "tags": ["a"]}) == []
    assert loaded.validate({"minItems": "1", "tags": []}) == [
        SchemaError("/minItems", "must be one of '1,'"),
        SchemaError("/tags", "must hold at least 1 item"),
    ]


def test_a_double_slash_reference_and_one_from_inside_it_resolve(tmp_path: Path) -> None:
    where = _write_schema(
        tmp_path,
        {"properties": {"v": {"$ref": "NIEMComponents//j.yaml#/components/schemas/jType"}}},
        j={"jType": {"properties": {"t": {"$ref": "nc.yaml#/components/schemas/ncText"}}}},
        nc={"ncText": {"type": "string", "nullable": True}},
    )
    loaded = EidoSchema.load(where)
    assert loaded.validate({"v": {"t": None}}) == []
    assert loaded.validate({"v": {"t": 1}}) == [SchemaError("/v/t", "expected string, got integer")]


def test_pointers_escape_as_rfc_6901_says(tmp_path: Path) -> None:
    loaded = EidoSchema.load(_write_schema(tmp_path, {"properties": {"a/b~c": {"type": "array"}}}))
    assert loaded.validate({"a/b~c": 1}) == [SchemaError("/a~1b~0c", "expected array, got integer")]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2021-04-30T14:43:49.439-04:00", True),
        ("2021-04-30t14:43:49z", True),
        ("2016-12-31T23:59:60Z", True),
        ("2021-04-30T14:43:49", False),
        ("2021-04-30", False),
        ("2021-02-30T14:43:49Z", False),
        ("2021-04-30T24:00:00Z", False),
        ("2021-04-30T14:43:49+24:00", False),
        ("2021-04-30 14:43:49Z", False),
    ],
)
def test_date_times_are_rfc_3339(tmp_path: Path, value: str, valid: bool) -> None:
    loaded = EidoSchema.load(_write_schema(tmp_path, {"type": "string", "format": "date-time"}))
    assert (loaded.validate(value) == []) is valid
