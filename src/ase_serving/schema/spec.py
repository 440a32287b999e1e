"""An API definition, whichever way it was written (ApiSchema YAML or the ``Api`` class in code).

Both front ends (:mod:`.yaml_api`, :mod:`.code_api`) build an :class:`ApiSpec` whose every part
remembers where it was written (:class:`Where`: file, line, field). :func:`check_spec` then finds
every impossible declaration at once (``minimum > maximum``, a required name that is not defined,
a duplicate name, ...) and :mod:`.spec_to_schema` turns a clean spec into the service schema JSON.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import jsonschema_rs

from ase_serving.errors import UserError

__all__ = [
    "BYTES_LIMITS",
    "DATA_TYPES",
    "LIMITS",
    "MODES",
    "PARAM_TYPES",
    "SECONDS_LIMITS",
    "ApiDefinitionError",
    "ApiProblem",
    "ApiSpec",
    "DataSpec",
    "Param",
    "Where",
    "check_constraints",
    "check_spec",
]

#: Data types of payload entries; the request's data field is named after the type.
DATA_TYPES = ("text", "audio", "image", "video", "other")
#: JSON Schema types a parameter may have.
PARAM_TYPES = ("string", "integer", "number", "boolean", "object", "array")
#: Interface types: a once request (HTTP POST) and a streaming session (WebSocket).
MODES = ("once", "session")
#: Per-service limits a spec may set (meta keys of the same name): seconds, then bytes.
SECONDS_LIMITS = ("read_timeout", "session_timeout", "queue_timeout")
BYTES_LIMITS = ("max_body", "max_frame")
LIMITS = SECONDS_LIMITS + BYTES_LIMITS
#: Formats the gateway's validator enforces on strings (jsonschema-rs, draft 7).
STRING_FORMATS = (
    "date",
    "date-time",
    "time",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
)
#: Numeric formats (OpenAPI's) become bounds, so that they are enforced too.
NUMBER_FORMATS: dict[str, tuple[float, float] | None] = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "float": None,
    "double": None,
}


@dataclass(frozen=True)
class Where:
    """Where a declaration was written: ``ai_api.yml:12: spec.request.parameters.properties.speed``."""

    file: str
    line: int | None
    field: str

    def __str__(self) -> str:
        at = f"{self.file}:{self.line}" if self.line else self.file
        return f"{at}: {self.field}" if self.field else at


@dataclass(frozen=True)
class ApiProblem:
    where: Where
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class ApiDefinitionError(UserError, ValueError):
    """An API definition was refused; ``problems`` lists every reason with its file, line and field."""

    def __init__(self, problems: list[ApiProblem]) -> None:
        # In the order of the source, so that a user fixes them from the top down.
        self.problems = sorted(problems, key=lambda p: (p.where.file, p.where.line or 0))
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class Param:
    """One request parameter: a JSON Schema fragment with the user's constraints.

    ``schema`` holds the keywords of this level only; an object's properties are ``children``
    and an array's element is ``items`` (each a Param with its own :class:`Where`).
    """

    name: str
    schema: dict[str, Any]
    where: Where
    required: bool = False
    children: list[Param] = field(default_factory=list)
    items: Param | None = None
    #: Names listed in an object's ``required`` that are checked against ``children``.
    required_where: dict[str, Where] = field(default_factory=dict)

    @property
    def type(self) -> str | None:
        t = self.schema.get("type")
        return t if isinstance(t, str) else None


@dataclass
class DataSpec:
    """A data input or output (a payload entry): ``audio1`` of type audio, speex-wb, ..."""

    name: str
    type: str
    where: Where
    encoding: list[str] = field(default_factory=list)
    compress: list[str] = field(default_factory=list)
    format: list[str] = field(default_factory=list)
    required: bool = False
    description: str = ""
    #: Type-specific attributes fixed by the declaration (sample_rate, channels, width, ...).
    attrs: dict[str, Any] = field(default_factory=dict)
    #: For an output that holds one value as text (an ``Arg`` in ``response()``): that value's schema.
    value: Param | None = None


@dataclass
class ApiSpec:
    """One service's API: identity, interface, parameters, data inputs and outputs."""

    service_id: str
    version: str
    where: Where
    #: Config item name (without ``.json``) and the (project, group, region) it belongs to.
    name: str = ""
    project: str | None = None
    group: str | None = None
    region: str | None = None
    config_file: str | None = None
    description: str = ""
    modes: list[str] = field(default_factory=lambda: list(MODES))
    route: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    sub: str = "ase"
    read_timeout: float | None = None
    session_timeout: float | None = None
    #: Seconds a once request (or a session's start) may wait for a free licence.
    queue_timeout: float | None = None
    #: Largest request body / WebSocket frame in bytes (10413 above it).
    max_body: int | None = None
    max_frame: int | None = None
    #: The wrapper's own codes that mean a bad request (HTTP 400 and WebSocket close 1008, not 500).
    client_errors: list[int] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    #: Extra parameters allowed (the YAML's ``additionalProperties: true``); default: refused.
    params_open: bool = False
    inputs: list[DataSpec] = field(default_factory=list)
    outputs: list[DataSpec] = field(default_factory=list)
    #: Names in a top-level ``required`` list (parameters or payload) with where each was written.
    required_params: dict[str, Where] = field(default_factory=dict)
    required_inputs: dict[str, Where] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        """The schema file's name: ``<name>.json`` (the service id when there is no name)."""
        return f"{self.name or self.service_id}.json"

    @property
    def item_name(self) -> str:
        """The config item's name: ``configFileName`` when given, else the file's name."""
        return self.config_file or self.file_name


def is_protocol_code(code: int) -> bool:
    """Whether ``code`` is one of the protocol's own (a wrapper's codes are the others)."""
    from ase_serving import errors

    return code in errors.HTTP_STATUS or 10900 <= code <= 10999


_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
_NUMERIC = ("integer", "number")
_BOUNDS = (
    ("minimum", "maximum", _NUMERIC),
    ("minLength", "maxLength", ("string",)),
    ("minItems", "maxItems", ("array",)),
    ("minProperties", "maxProperties", ("object",)),
)
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _is(value: Any, json_type: str) -> bool:
    if json_type in _NUMERIC and isinstance(value, bool):
        return False
    if json_type == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES[json_type])


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_bounds(p: Param, out: list[ApiProblem]) -> None:
    s, t = p.schema, p.type
    for low, high, types in _BOUNDS:
        for key in (low, high):
            if key in s and t is not None and t not in types:
                out.append(ApiProblem(p.where, f"{key} applies to {' or '.join(types)}, not to type {t}"))
        lo, hi = s.get(low), s.get(high)
        for key, v in ((low, lo), (high, hi)):
            if v is not None and not _number(v):
                out.append(ApiProblem(p.where, f"{key} must be a number, not {v!r}"))
        if _number(lo) and _number(hi) and lo > hi:
            out.append(ApiProblem(p.where, f"{low} {lo} > {high} {hi}: no value can satisfy both"))
        if low != "minimum" and _number(lo) and lo < 0:
            out.append(ApiProblem(p.where, f"{low} must be >= 0, not {lo}"))
    for key in ("exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
        if key in s and not _number(s[key]):
            out.append(ApiProblem(p.where, f"{key} must be a number, not {s[key]!r}"))
    if "multipleOf" in s and _number(s["multipleOf"]) and s["multipleOf"] <= 0:
        out.append(ApiProblem(p.where, f"multipleOf must be > 0, not {s['multipleOf']}"))


def _check_values(p: Param, out: list[ApiProblem], formats: bool = True) -> None:
    s, t = p.schema, p.type
    if "enum" in s:
        enum = s["enum"]
        if not isinstance(enum, list) or not enum:
            out.append(ApiProblem(p.where, "enum must be a non-empty list of the allowed values"))
        elif t is not None:
            bad = [v for v in enum if not _is(v, t)]
            if bad:
                out.append(ApiProblem(p.where, f"enum values {bad!r} are not of type {t}"))
    if "pattern" in s:
        try:
            re.compile(str(s["pattern"]))
        except re.error as exc:
            out.append(ApiProblem(p.where, f"pattern {s['pattern']!r} is not a regular expression: {exc}"))
    if "default" in s and t is not None and not _is(s["default"], t):
        out.append(ApiProblem(p.where, f"default {s['default']!r} is not of type {t}"))
    fmt = s.get("format")
    if fmt is not None and formats:
        if t in _NUMERIC and fmt not in NUMBER_FORMATS:
            known = ", ".join(NUMBER_FORMATS)
            out.append(ApiProblem(p.where, f"format {fmt!r} is not a number format (one of {known})"))
        elif t == "string" and fmt not in STRING_FORMATS:
            known = ", ".join(STRING_FORMATS)
            out.append(
                ApiProblem(p.where, f"format {fmt!r} is not a string format the gateway checks ({known})")
            )
        elif t not in _NUMERIC and t != "string":
            out.append(ApiProblem(p.where, f"format applies to strings and numbers, not to type {t}"))


def _own_schema(p: Param) -> dict[str, Any]:
    """What a value of ``p`` must satisfy, nested parts included (a number format as its bounds)."""
    out = {k: v for k, v in p.schema.items() if k not in ("default", "format", "examples")}
    bounds = NUMBER_FORMATS.get(str(p.schema.get("format"))) if p.type in _NUMERIC else None
    if bounds is not None:
        out["minimum"] = max(bounds[0], out.get("minimum", bounds[0]))
        out["maximum"] = min(bounds[1], out.get("maximum", bounds[1]))
    if p.children:
        out["properties"] = {c.name: _own_schema(c) for c in p.children}
        out["required"] = [c.name for c in p.children if c.required]
    if p.items is not None:
        out["items"] = _own_schema(p.items)
    return out


def _check_default(p: Param, out: list[ApiProblem]) -> None:
    """A default the parameter itself would refuse (out of its range, not in its enum, ...):
    checked only once the parameter's own keywords are sound, so one mistake is said once."""
    if "default" not in p.schema or p.type is None or not _is(p.schema["default"], p.type):
        return
    try:
        errors = list(jsonschema_rs.Draft7Validator(_own_schema(p)).iter_errors(p.schema["default"]))
    except (jsonschema_rs.ValidationError, ValueError):
        return  # a nested part is unsound: said where it is
    if errors:
        err = errors[0]
        path = "".join(f"[{k!r}]" if isinstance(k, str) else f"[{k}]" for k in err.instance_path)
        at = f"at {path}, " if path else ""
        default = p.schema["default"]
        out.append(
            ApiProblem(p.where, f"default {default!r} does not meet its own constraints: {at}{err.message}")
        )


def _check_param(p: Param, out: list[ApiProblem]) -> None:
    if p.type is None:
        out.append(ApiProblem(p.where, f"type is required: one of {', '.join(PARAM_TYPES)}"))
    elif p.type not in PARAM_TYPES:
        out.append(ApiProblem(p.where, f"unknown type {p.type!r}: use one of {', '.join(PARAM_TYPES)}"))
        return
    before = len(out)
    _check_bounds(p, out)
    _check_values(p, out)
    if len(out) == before:
        _check_default(p, out)
    if p.children and p.type not in (None, "object"):
        out.append(ApiProblem(p.where, f"properties apply to type object, not to type {p.type}"))
    if p.items is not None and p.type not in (None, "array"):
        out.append(ApiProblem(p.where, f"items applies to type array, not to type {p.type}"))
    _check_names(p.children, p.required_where, "property", out)
    for child in p.children:
        _check_param(child, out)
    if p.items is not None:
        _check_param(p.items, out)


def _check_names(
    declared: list[Param] | list[DataSpec], required: dict[str, Where], what: str, out: list[ApiProblem]
) -> None:
    seen: dict[str, Where] = {}
    for d in declared:
        if d.name in seen:
            out.append(ApiProblem(d.where, f"duplicate {what} name {d.name!r} (also at {seen[d.name]})"))
        else:
            seen[d.name] = d.where
    for name, where in required.items():
        if name not in seen:
            known = ", ".join(sorted(seen)) or "none"
            out.append(ApiProblem(where, f"required {what} {name!r} is not defined (defined: {known})"))


def _check_data(d: DataSpec, out: list[ApiProblem]) -> None:
    if d.type not in DATA_TYPES:
        out.append(ApiProblem(d.where, f"unknown data type {d.type!r}: use one of {', '.join(DATA_TYPES)}"))
    if not _ID.match(d.name):
        out.append(ApiProblem(d.where, f"name {d.name!r}: use letters, digits, '-', '_' or '.'"))


def check_spec(spec: ApiSpec) -> list[ApiProblem]:
    """Every problem of ``spec`` (each with its file, line and field); [] when it can be built."""
    out: list[ApiProblem] = []
    w = spec.where
    if not spec.service_id or not _ID.match(spec.service_id):
        out.append(ApiProblem(w, f"service id {spec.service_id!r}: use letters, digits, '-', '_' or '.'"))
    if not spec.version or not _VERSION.match(spec.version):
        out.append(ApiProblem(w, f"version {spec.version!r}: use letters, digits, '.', '_', '-', ':' or '@'"))
    # These become a file name (``api create -o DIR``) or a part of a config key: no separator,
    # no "..", nothing hidden.
    for label, value in (
        ("metadata.name", spec.name),
        ("metadata.configFileName", spec.config_file),
        ("metadata.projectName", spec.project),
        ("metadata.group", spec.group),
        ("metadata.region", spec.region),
    ):
        if value and not _ID.match(value):
            out.append(
                ApiProblem(
                    w,
                    f"{label} {value!r}: use letters, digits, '-', '_' or '.' (it names a file and a "
                    "config key: no '/', no leading '.')",
                )
            )
    for code in spec.client_errors:
        if isinstance(code, bool) or not isinstance(code, int) or code <= 0 or is_protocol_code(code):
            out.append(
                ApiProblem(
                    w,
                    f"client_errors: {code!r} is not one of the wrapper's own codes (a positive integer "
                    "that is no protocol code: 10160-10413, 10110, 10114, 11503, 109xx)",
                )
            )
    if not spec.modes or any(m not in MODES for m in spec.modes):
        out.append(ApiProblem(w, f"interface {spec.modes!r}: use once, session, or both"))
    for r in spec.route:
        if not r.startswith("/"):
            out.append(ApiProblem(w, f"route {r!r} must start with '/'"))
    for name in SECONDS_LIMITS:
        value = getattr(spec, name)
        if value is not None and (not _number(value) or value <= 0):
            out.append(ApiProblem(w, f"{name} must be a number of seconds > 0, not {value!r}"))
    for name in BYTES_LIMITS:
        value = getattr(spec, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            out.append(ApiProblem(w, f"{name} must be a whole number of bytes > 0, not {value!r}"))
    _check_names(spec.params, spec.required_params, "parameter", out)
    for p in spec.params:
        if not _ID.match(p.name):
            out.append(
                ApiProblem(p.where, f"parameter name {p.name!r}: use letters, digits, '-', '_' or '.'")
            )
        _check_param(p, out)
    _check_names(spec.inputs, spec.required_inputs, "input", out)
    _check_names(spec.outputs, {}, "output", out)
    params = {p.name: p.where for p in spec.params}
    for d in spec.outputs:
        # Data outputs are asked for by name in parameter.<serviceId> (the "accept" entries);
        # an output holding one value has no accept entry, so it may share a parameter's name.
        if d.value is None and d.name in params:
            out.append(
                ApiProblem(d.where, f"output {d.name!r} has the name of a parameter (at {params[d.name]})")
            )
    for d in [*spec.inputs, *spec.outputs]:
        _check_data(d, out)
        if d.value is not None:
            _check_param(d.value, out)
    return out


def check_constraints(schema: dict[str, Any], where: Where) -> list[ApiProblem]:
    """The checks :func:`check_spec` makes of one parameter, on one node of a JSON Schema written
    by hand (a service schema given to ``asectl config upload``): bounds that no value can satisfy
    (``minimum 11 > maximum 10``), an ``enum`` or ``default`` of the wrong type, a pattern that
    is not a regular expression, and a required name that is not defined where no other name is
    allowed. Formats are not checked: JSON Schema lets a format it does not know pass."""
    keywords = {k: v for k, v in schema.items() if k not in ("properties", "items", "required")}
    p = Param(where.field, keywords, where)
    out: list[ApiProblem] = []
    if p.type is not None and p.type not in PARAM_TYPES:
        return out  # null, or a type the meta-schema check already named
    _check_bounds(p, out)
    _check_values(p, out, formats=False)
    props, required = schema.get("properties"), schema.get("required")
    if isinstance(props, dict) and isinstance(required, list) and schema.get("additionalProperties") is False:
        for name in required:
            if isinstance(name, str) and name not in props:
                known = ", ".join(sorted(props)) or "none"
                out.append(ApiProblem(where, f"required property {name!r} is not defined (defined: {known})"))
    return out
