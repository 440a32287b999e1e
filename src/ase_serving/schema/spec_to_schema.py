"""An :class:`~.spec.ApiSpec` -> the service schema JSON (README, "Service schemas").

Three parts: ``meta``, ``schemainput``, ``schemaoutput``.

``schemainput`` is a draft-7 JSON Schema of the whole request body (docs/protocol.md): ``header``
(platform fields, ``app_id`` required), ``parameter.<serviceId>`` (the user's parameters with
every constraint, plus one entry per output naming the wanted encoding/compress/format) and
``payload`` (one object per data input, its data under the field named after its type, base64).
Unknown parameters and inputs are refused unless the definition allows more parameters.
"""

from __future__ import annotations

from typing import Any

from ase_serving.schema.service import default_route
from ase_serving.schema.spec import (
    LIMITS,
    NUMBER_FORMATS,
    ApiDefinitionError,
    ApiSpec,
    DataSpec,
    Param,
    check_spec,
)

__all__ = ["DRAFT7", "build_service_schema", "header_schema"]

DRAFT7 = "http://json-schema.org/draft-07/schema#"
_STATUS = {"type": "integer", "enum": [0, 1, 2, 3], "description": "0 first, 1 continue, 2 last, 3 once"}
_BASE64 = {"type": "string", "contentEncoding": "base64"}


def header_schema() -> dict[str, Any]:
    """The platform fields of ``header`` (docs/protocol.md); other fields are passed on as they are."""
    text = {"type": "string", "maxLength": 128}
    return {
        "type": "object",
        "properties": {
            "app_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "description": "the caller's app id",
            },
            "uid": {**text, "description": "the end user's id"},
            "did": {**text, "description": "the device id"},
            "request_id": {**text, "description": "the caller's id of this request"},
            "sid": {**text, "description": "a session id (given by the server)"},
            "status": _STATUS,
        },
        "required": ["app_id"],
    }


def _param_schema(p: Param) -> dict[str, Any]:
    out = {k: v for k, v in p.schema.items() if k != "format" or p.type == "string"}
    bounds = NUMBER_FORMATS.get(str(p.schema.get("format"))) if p.type in ("integer", "number") else None
    if bounds is not None:
        # OpenAPI's int32/int64/... are not draft-7 formats: enforce them as bounds.
        lo, hi = bounds
        out["minimum"] = max(lo, out.get("minimum", lo))
        out["maximum"] = min(hi, out.get("maximum", hi))
    if p.children:
        out["properties"] = {c.name: _param_schema(c) for c in p.children}
        required = [c.name for c in p.children if c.required]
        if required:
            out["required"] = required
    if p.items is not None:
        out["items"] = _param_schema(p.items)
    return out


def _choice(values: list[str], what: str) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "string", "description": what}
    if values:
        s["enum"] = list(values)
    return s


def _data_attrs(d: DataSpec) -> dict[str, Any]:
    return {
        "encoding": _choice(d.encoding, "the data's encoding"),
        "compress": _choice(d.compress, "the data's compression"),
        "format": _choice(d.format, "the data's format"),
    }


def _input_schema(d: DataSpec) -> dict[str, Any]:
    props: dict[str, Any] = {
        **_data_attrs(d),
        "status": _STATUS,
        "seq": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        d.type: {**_BASE64, "description": f"the {d.type} data, base64"},
    }
    for key, value in d.attrs.items():
        # Data attributes reach the engine as strings: 16000 and "16000" are the same rate.
        same = [value] if isinstance(value, str) else [value, str(value)]
        props.setdefault(key, {"enum": same} if value is not None else {})
    s: dict[str, Any] = {"type": "object", "properties": props, "required": [d.type]}
    if d.description:
        s["description"] = d.description
    return s


def _accept_schema(d: DataSpec) -> dict[str, Any]:
    desc = d.description or f"the wanted form of the output {d.name}"
    return {
        "type": "object",
        "description": desc,
        "properties": _data_attrs(d),
        "additionalProperties": False,
    }


def _output_schema(d: DataSpec) -> dict[str, Any]:
    s = _input_schema(d)
    s["properties"].pop("seq", None)
    if d.value is not None:
        # The decoded text holds one value; describe it (validators ignore x- keywords).
        s["x-value"] = _param_schema(d.value)
    return s


def _meta_data(d: DataSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"dataType": d.type}
    for key in ("encoding", "compress", "format"):
        values = getattr(d, key)
        if values:
            out[key] = values[0] if len(values) == 1 else list(values)
    out.update({k: v for k, v in d.attrs.items() if v is not None})
    return out


def _meta(spec: ApiSpec) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "serviceId": spec.service_id,
        "version": spec.version,
        "route": (spec.route[0] if len(spec.route) == 1 else list(spec.route))
        if spec.route
        else default_route(spec.service_id),
        "sub": spec.sub,
        "interface": list(spec.modes),
    }
    if spec.hosts:
        meta["hosts"] = list(spec.hosts)
    for key in LIMITS:
        value = getattr(spec, key)
        if value is not None:
            meta[key] = value
    if spec.client_errors:
        meta["client_errors"] = sorted(set(spec.client_errors))
    if spec.description:
        meta["description"] = spec.description
    for key, value in (("project", spec.project), ("group", spec.group), ("region", spec.region)):
        if value:
            meta[key] = value
    if spec.name:
        meta["name"] = spec.name
    meta[spec.service_id] = {
        "input": {d.name: _meta_data(d) for d in spec.inputs},
        "accept": {d.name: _meta_data(d) for d in spec.outputs},
    }
    return meta


def _schemainput(spec: ApiSpec) -> dict[str, Any]:
    own: dict[str, Any] = {p.name: _param_schema(p) for p in spec.params}
    own.update({d.name: _accept_schema(d) for d in spec.outputs if d.value is None})
    service_params: dict[str, Any] = {"type": "object", "properties": own}
    required_params = [p.name for p in spec.params if p.required]
    if required_params:
        service_params["required"] = required_params
    if not spec.params_open:
        service_params["additionalProperties"] = False
    parameter: dict[str, Any] = {"type": "object", "properties": {spec.service_id: service_params}}
    payload: dict[str, Any] = {
        "type": "object",
        "properties": {d.name: _input_schema(d) for d in spec.inputs},
        "additionalProperties": False,
    }
    required_inputs = [d.name for d in spec.inputs if d.required]
    if required_inputs:
        payload["required"] = required_inputs
    required = ["header"]
    if required_params:
        parameter["required"] = [spec.service_id]
        required.append("parameter")
    if required_inputs:
        required.append("payload")
    return {
        "$schema": DRAFT7,
        "title": f"{spec.service_id} {spec.version} request",
        "type": "object",
        "properties": {"header": header_schema(), "parameter": parameter, "payload": payload},
        "required": required,
    }


def _schemaoutput(spec: ApiSpec) -> dict[str, Any]:
    return {
        "$schema": DRAFT7,
        "title": f"{spec.service_id} {spec.version} response payload",
        "type": "object",
        "properties": {d.name: _output_schema(d) for d in spec.outputs},
    }


def build_service_schema(spec: ApiSpec) -> dict[str, Any]:
    """The service schema of ``spec``; :class:`ApiDefinitionError` with every problem if it has any."""
    problems = check_spec(spec)
    if problems:
        raise ApiDefinitionError(problems)
    return {"meta": _meta(spec), "schemainput": _schemainput(spec), "schemaoutput": _schemaoutput(spec)}
