"""NENA EIDO 1.0 documents checked against NENA's own schema (NENA-STA-021.1.1, OpenAPI
3.0.2), read from a directory outside the repository: the schema is NENA's, so it is
never copied here. Load once (about a second: 105k lines of YAML, then every schema the
document type reaches is checked), validate per request (about a millisecond for NENA's
sample); a loaded schema is immutable, so one instance serves every thread."""

from __future__ import annotations

import copy
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

import yaml
from jsonschema import FormatChecker, ValidationError
from jsonschema.exceptions import SchemaError as MetaSchemaError
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT4

DOCUMENT_TYPE = "EmergencyIncidentDataObjectType"
# Errors returned by one validate call. A hostile document can hold thousands; past
# SCAN_LIMIT distinct ones the rest are not even looked for (bounded cost per request).
MAX_ERRORS = 100
SCAN_LIMIT = 1000

# Numeric schema keywords. NENA's file writes one as `minItems: 1,` (a JSON habit), which
# YAML reads as the string "1,": such strings, and only such, are read as the number.
_NUMERIC_KEYWORDS = frozenset(
    {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties",
     "minimum", "maximum", "multipleOf"}
)  # fmt: skip
_NUMBER_WITH_COMMA = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*,?\s*")
# RFC 3339 section 5.6, as JSON Schema's "date-time" means it.
_DATE_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:[Zz]|([+-])(\d\d):(\d\d))"
)
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
    (list, "array"), (dict, "object"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SchemaError:
    """One way a document breaks the schema: where (an RFC 6901 pointer into the
    document, "" for the whole of it) and why, without echoing the document's values."""

    pointer: str
    reason: str


class SchemaLoadError(RuntimeError):
    """The schema directory is missing, unreadable, or holds a schema that cannot be used."""


def default_schema_dir() -> Path:
    """Where the schema is when CAD_EIDO_SCHEMA_DIR is unset: shared/standards/eido beside
    the checkout (the repository root is two levels above this package)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "standards" / "eido"


class EidoSchema:
    """NENA's schema for EmergencyIncidentDataObjectType, with the NIEM types it uses."""

    def __init__(
        self,
        directory: Path,
        validator: Any,
        components: Mapping[str, Any],
        normalised: tuple[str, ...],
    ) -> None:
        self.directory = directory
        self._validator = validator
        self._components = components
        # Each keyword value read as a number though the file wrote a string, as
        # "openapi.yaml#/components/schemas/…/minItems".
        self.normalised = normalised

    @classmethod
    def load(cls, directory: Path) -> EidoSchema:
        """Read openapi.yaml and NIEMComponents/*.yaml, and check that every schema the
        document type reaches resolves and is well formed: a broken schema fails here, at
        start, not as a 500 on some later request."""
        directory = Path(directory).resolve()
        root = directory / "openapi.yaml"
        if not root.is_file():
            raise SchemaLoadError(
                f"NENA's EIDO schema is not at {directory} (no openapi.yaml); "
                "set CAD_EIDO_SCHEMA_DIR to the folder holding openapi.yaml and NIEMComponents/"
            )
        files = [root, *sorted((directory / "NIEMComponents").glob("*.yaml"))]
        contents: dict[str, Any] = {}
        normalised: list[str] = []
        for path in files:
            document = _read_yaml(path)
            for name, schema in _component_schemas(document, path):
                where = (
                    f"{path.relative_to(directory).as_posix()}#/components/schemas/{_escape(name)}"
                )
                normalised.extend(_normalise(schema, where))
            contents[path.as_uri()] = document
        resources = {uri: DRAFT4.create_resource(doc) for uri, doc in contents.items()}

        def retrieve(uri: str) -> Resource[Any]:
            # NENA writes one reference "NIEMComponents//j.yaml". Python's urljoin folds
            # "//" today; RFC 3986 keeps it, so a later urljoin may not: either way it is
            # the same file, already read (nothing is read here).
            canonical = _canonical(uri)
            if canonical != uri and canonical in resources:
                return resources[canonical]
            raise NoSuchResource(uri)

        # referencing's own attrs wrapper hides the `retrieve` alias from mypy.
        registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
        registry = registry.with_resources(resources.items())
        start = f"{root.as_uri()}#/components/schemas/{DOCUMENT_TYPE}"
        _check_reachable(registry, start)
        validator = OAS30Validator(
            {"$ref": start}, registry=registry, format_checker=_format_checker()
        )
        components = contents[root.as_uri()]["components"]["schemas"]
        return cls(directory, validator, components, tuple(normalised))

    def validate(self, doc: object) -> list[SchemaError]:
        """Every way `doc` breaks the schema (none: it is a valid EIDO 1.0 document), in
        document order by pointer, at most MAX_ERRORS of them."""
        found: dict[SchemaError, tuple[tuple[int, int | str], ...]] = {}
        try:
            for error in self._validator.iter_errors(doc):
                found.setdefault(
                    SchemaError(_pointer(error.absolute_path), _reason(error)),
                    tuple(_order(segment) for segment in error.absolute_path),
                )
                if len(found) >= SCAN_LIMIT:
                    break
        except RecursionError:
            return [SchemaError("", "nested too deeply to check")]
        ranked = sorted(found, key=lambda e: (found[e], e.reason))
        return ranked[:MAX_ERRORS]

    def component(self, name: str) -> dict[str, Any]:
        """A copy of one of openapi.yaml's component schemas, as loaded (normalised)."""
        return copy.deepcopy(self._components[name])


def _read_yaml(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with path.open("rb") as stream:
            return yaml.load(stream, Loader=loader)
    except (OSError, yaml.YAMLError) as exc:
        raise SchemaLoadError(f"cannot read {path}: {exc}") from exc


def _component_schemas(document: Any, path: Path) -> Iterator[tuple[str, Any]]:
    try:
        schemas = document["components"]["schemas"]
    except (TypeError, KeyError) as exc:
        raise SchemaLoadError(f"{path} has no components/schemas") from exc
    yield from schemas.items()


def _subschemas(schema: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """The schemas inside one (OpenAPI 3.0 applicator keywords), with their pointer
    suffixes. Property maps hold names, not keywords: a property called "minItems" or
    "$ref" is a name (NENA's ReferenceType has a property "$ref")."""
    for name, sub in (schema.get("properties") or {}).items():
        yield f"/properties/{_escape(name)}", sub
    for keyword in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(keyword), dict):
            yield f"/{keyword}", schema[keyword]
    for keyword in ("allOf", "anyOf", "oneOf"):
        for index, sub in enumerate(schema.get(keyword) or ()):
            yield f"/{keyword}/{index}", sub


def _normalise(schema: Any, where: str) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    for keyword in _NUMERIC_KEYWORDS & schema.keys():
        value = schema[keyword]
        if isinstance(value, str) and (match := _NUMBER_WITH_COMMA.fullmatch(value)):
            number = match.group(1)
            schema[keyword] = float(number) if "." in number else int(number)
            yield f"{where}/{keyword}"
    for suffix, sub in _subschemas(schema):
        yield from _normalise(sub, where + suffix)


def _check_reachable(registry: Registry[Any], start: str) -> None:
    """Resolve every $ref the document type reaches, and check each schema reached
    against OpenAPI 3.0's meta-schema (draft 4), so validate never meets a broken one."""
    resolver = registry.resolver()
    seen = {_canonical(start)}
    queue = [start]
    problems: list[str] = []
    while queue:
        target = queue.pop()
        try:
            schema = resolver.lookup(target).contents
        except Unresolvable as exc:
            problems.append(f"{target}: does not resolve ({exc})")
            continue
        try:
            OAS30Validator.check_schema(schema)
        except MetaSchemaError as exc:
            problems.append(f"{target}{_pointer(exc.absolute_path)}: {exc.message}")
        base = urldefrag(target).url
        for ref in _refs(schema):
            # Looked up as spelt, as validate will; visited once however spelt.
            absolute = urljoin(base, ref)
            if _canonical(absolute) not in seen:
                seen.add(_canonical(absolute))
                queue.append(absolute)
    if problems:
        raise SchemaLoadError(
            f"NENA's EIDO schema has {len(problems)} unusable schema(s): " + "; ".join(problems[:5])
        )


def _refs(schema: Any) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    if isinstance(schema.get("$ref"), str):
        yield schema["$ref"]
    for _, sub in _subschemas(schema):
        yield from _refs(sub)


def _canonical(uri: str) -> str:
    parts = urlsplit(uri)
    path = posixpath.normpath(parts.path) if parts.path else parts.path
    return urlunsplit(parts._replace(path=path))


def _format_checker() -> FormatChecker:
    """date-time (RFC 3339, as the import route parses it) and int32 are checked; uri
    and uri-reference are not (a URI parser would be one more dependency)."""
    checker = FormatChecker(formats=())
    checker.checks("date-time")(_is_date_time)
    checker.checks("int32")(_is_int32)
    return checker


def _is_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    match = _DATE_TIME.fullmatch(instance)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if match.group(7) and (int(match.group(8)) > 23 or int(match.group(9)) > 59):
        return False
    try:
        # A leap second (":60") is valid RFC 3339; datetime has no room for it.
        datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    return second <= 60


def _is_int32(instance: object) -> bool:
    if isinstance(instance, bool) or not isinstance(instance, int):
        return True
    return -(2**31) <= instance < 2**31


def _escape(segment: object) -> str:
    return str(segment).replace("~", "~0").replace("/", "~1")


def _pointer(path: Any) -> str:
    return "".join("/" + _escape(segment) for segment in path)


def _order(segment: int | str) -> tuple[int, int | str]:
    # Array indices in numeric order ("/callComponent/2" before "/callComponent/10").
    return (0, segment) if isinstance(segment, int) else (1, segment)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _reason(error: ValidationError) -> str:
    """A short message naming what the schema wants; the document's own values are left
    out (they may be a caller's personal details, and may be long)."""
    keyword, expected = error.validator, error.validator_value
    if keyword == "type":
        return f"expected {expected}, got {_json_type(error.instance)}"
    if keyword == "required":
        return str(error.message)
    if keyword == "enum":
        values = list(expected)
        if len(values) <= 10:
            return "must be one of " + ", ".join(repr(v) for v in values)
        return f"not one of the {len(values)} values the schema allows"
    if keyword == "format":
        named = {"date-time": "an RFC 3339 date-time", "int32": "a 32-bit integer"}
        return f"must be {named.get(str(expected), repr(expected))}"
    if keyword == "minItems":
        return f"must hold at least {expected} item{'s' if expected != 1 else ''}"
    if keyword == "maxItems":
        return f"must hold at most {expected} item{'s' if expected != 1 else ''}"
    if keyword == "minLength":
        return f"must be at least {expected} character{'s' if expected != 1 else ''} long"
    if keyword == "maxLength":
        return f"must be at most {expected} character{'s' if expected != 1 else ''} long"
    message = str(error.message)
    return message if len(message) <= 200 else message[:199] + "…"
