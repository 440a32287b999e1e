"""The service schema JSON (README, "Service schemas"): recognise one and check it before it
reaches the config centre.

A service schema is a JSON object with ``meta`` (``serviceId``, ``version``, ``route``, ...),
``schemainput`` (a JSON Schema of the request body) and ``schemaoutput`` (a JSON Schema of the
response payload). :func:`check_service_schema` reports *every* problem at once, each with the
JSON path of the value it is about (``$.schemainput.properties.payload.type``), so a user fixes
them in one go. Both JSON Schemas are checked against draft 7 with ``jsonschema-rs``, the
validator the gateways compile them with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema_rs
import orjson

from ase_serving.errors import UserError

__all__ = [
    "Problem",
    "ServiceSchemaError",
    "check_service_schema",
    "default_route",
    "is_service_schema",
    "parse_json",
    "schema_routes",
]

#: The draft-7 meta-schema (jsonschema-rs carries it, so no network is needed to resolve it).
_META = jsonschema_rs.Draft7Validator({"$ref": "http://json-schema.org/draft-07/schema#"})
_SCHEMA_PARTS = ("schemainput", "schemaoutput")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: where (a JSON path such as ``$.meta.version``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ServiceSchemaError(UserError, ValueError):
    """A service schema was refused; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        listed = "; ".join(str(p) for p in problems)
        super().__init__(f"{source} is not a valid service schema: {listed}")


def json_path(parts: list[str | int] | tuple[str | int, ...], root: str = "$") -> str:
    """``["a", 0, "b c"]`` -> ``$.a[0]["b c"]``."""
    out = root
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += "[" + orjson.dumps(part).decode() + "]"
    return out


def parse_json(content: bytes) -> tuple[Any, Problem | None]:
    """(document, None), or (None, the syntax problem with its line and column)."""
    try:
        return orjson.loads(content), None
    except orjson.JSONDecodeError as exc:
        return None, Problem("$", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")


def is_service_schema(doc: Any) -> bool:
    """True for a JSON object with ``meta`` and ``schemainput`` (what a gateway would load)."""
    return isinstance(doc, dict) and "meta" in doc and "schemainput" in doc


def default_route(service_id: str) -> str:
    return f"/v1/private/{service_id}"


def schema_routes(doc: dict[str, Any]) -> list[str]:
    """The routes a service schema asks for: ``meta.route`` (string or list), else the default."""
    meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    assert isinstance(meta, dict)
    route = meta.get("route")
    if isinstance(route, str) and route:
        return [route]
    if isinstance(route, list) and route and all(isinstance(r, str) and r for r in route):
        return list(route)
    return [default_route(str(meta.get("serviceId", "")))]


def _check_meta(doc: dict[str, Any], service: str | None, version: str | None) -> list[Problem]:
    meta = doc.get("meta")
    if not isinstance(meta, dict):
        return [Problem("$.meta", "must be an object with serviceId and version")]
    problems: list[Problem] = []
    for field, expected, flag in (("serviceId", service, "--service"), ("version", version, "--version")):
        value = meta.get(field)
        if not isinstance(value, str) or not value:
            problems.append(Problem(f"$.meta.{field}", "required: a non-empty string"))
        elif expected is not None and value != expected:
            problems.append(
                Problem(f"$.meta.{field}", f"is {value!r} but the item is stored under {flag} {expected!r}")
            )
    codes = meta.get("client_errors")
    if codes is not None and (
        not isinstance(codes, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in codes)
    ):
        problems.append(Problem("$.meta.client_errors", "must be a list of integers (the wrapper's codes)"))
    route = meta.get("route")
    if route is not None:
        routes = [route] if isinstance(route, str) else route
        if not isinstance(routes, list) or not routes:
            problems.append(Problem("$.meta.route", "must be a string or a non-empty list of strings"))
        else:
            for i, r in enumerate(routes):
                at = "$.meta.route" if isinstance(route, str) else f"$.meta.route[{i}]"
                if not isinstance(r, str) or not r.startswith("/"):
                    problems.append(Problem(at, f"{r!r} is not a path starting with '/'"))
    return problems


_TYPES = "array, boolean, integer, null, number, object, string"


def _message(err: jsonschema_rs.ValidationError) -> str:
    # The meta-schema's "type" is an anyOf (a name or a list of names): its own message says
    # nothing a user can act on, so name the allowed types instead.
    path = err.instance_path
    if path and path[-1] == "type" and err.kind.name == "anyOf":
        return (
            f"{orjson.dumps(err.instance).decode()} is not a JSON Schema type ({_TYPES}, or a list of them)"
        )
    return err.message


def _check_json_schema(part: str, schema: Any) -> list[Problem]:
    if not isinstance(schema, (dict, bool)):
        return [Problem(f"$.{part}", "must be a JSON Schema (an object)")]
    problems = [
        Problem(json_path(list(err.instance_path), f"$.{part}"), _message(err))
        for err in _META.iter_errors(schema)
    ]
    if not problems:
        # Valid against the meta-schema but still not compilable (a bad regex, an unresolvable $ref).
        try:
            jsonschema_rs.Draft7Validator(schema, validate_formats=False)
        except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
            problems.append(Problem(f"$.{part}", f"cannot be compiled: {str(exc).splitlines()[0]}"))
    return problems


def check_service_schema(
    content: bytes | Any, service: str | None = None, version: str | None = None
) -> list[Problem]:
    """Every problem of a service schema (raw bytes or an already parsed document); [] if valid.

    ``service``/``version``, when given, must match ``meta.serviceId``/``meta.version``.
    """
    if isinstance(content, (bytes, bytearray)):
        doc, problem = parse_json(bytes(content))
        if problem is not None:
            return [problem]
    else:
        doc = content
    if not isinstance(doc, dict):
        return [Problem("$", "must be a JSON object with meta, schemainput and schemaoutput")]
    problems = _check_meta(doc, service, version)
    for part in _SCHEMA_PARTS:
        if part not in doc:
            problems.append(Problem(f"$.{part}", "required: a JSON Schema (draft 7)"))
        else:
            problems.extend(_check_json_schema(part, doc[part]))
    return problems
