"""Service schemas -> an OpenAPI 3.1 document (what gateways serve at ``/openapi.json``).

OpenAPI 3.1 takes JSON Schema as it is, so ``schemainput``/``schemaoutput`` go in unchanged:
every parameter keeps its constraints and description. Each route gets a ``post`` (a once
request) when the service takes once requests; a session service's WebSocket side is described
in the text of a ``get`` operation (OpenAPI cannot describe WebSockets). Each operation carries an
example request built from its schema (:func:`example_request`), valid against it, and two
extensions for tools: ``x-ase-interface`` (``once``, ``session``) and, on a session-only ``get``,
``x-ase-request`` (the first frame's schema).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable
from typing import Any

from ase_serving.schema.loaded import ServiceSchema

__all__ = ["ERROR_CODES", "FORMAT_EXAMPLES", "example_request", "example_value", "openapi_document"]

#: HTTP status -> the protocol codes it carries (docs/protocol.md).
ERROR_CODES: dict[int, str] = {
    400: "10160 body is not JSON, 10161 bad base64, 10163 does not match the schema, 10202, 10313",
    401: "10401 authentication failed",
    403: "10403 not allowed to call this service, 10313 app_id of another consumer",
    404: "10404 no service at this route",
    408: "10114 the request's headers or body came too slowly",
    413: "10413 request too large",
    415: "10160 the body is sent as something else than JSON (Content-Type)",
    429: "10110 no free engine licence (retry after Retry-After seconds)",
    500: "109xx wrapper failure, or the wrapper's own code; 10500 a gateway failure",
    503: "11503 no loader for the service",
    504: "10114 timeout",
}
_SAMPLE = base64.b64encode(b"example data").decode()
#: A value of each string format (spec.STRING_FORMATS): the examples, and the gateway's hint.
FORMAT_EXAMPLES = {
    "date": "2026-01-01",
    "date-time": "2026-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "/example",
    "iri-reference": "/example",
    "uri-template": "/example/{id}",
    "json-pointer": "/example",
    "relative-json-pointer": "0",
    "regex": ".*",
}


def _number(s: dict[str, Any], integer: bool) -> int | float:
    lo, hi = s.get("minimum"), s.get("maximum")
    xlo, xhi = s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
    step = 1 if integer else 0.5
    if lo is None and xlo is not None:
        lo = xlo + step
    if hi is None and xhi is not None:
        hi = xhi - step
    value: int | float = lo if lo is not None else (hi if hi is not None and hi < 0 else 0)
    if hi is not None and value > hi:
        value = hi
    mult = s.get("multipleOf")
    if mult:
        value = -(-value // mult) * mult
    if integer:
        value = int(value) if float(value).is_integer() else int(value) + 1
    return value


def example_value(s: Any) -> Any:
    """A value that satisfies the JSON Schema ``s`` (for the constraints our schemas use)."""
    if not isinstance(s, dict):
        return None
    for key in ("const", "default"):
        if key in s:
            return copy.deepcopy(s[key])
    if s.get("examples"):
        return copy.deepcopy(s["examples"][0])
    if s.get("enum"):
        return copy.deepcopy(s["enum"][0])
    t = s.get("type")
    if isinstance(t, list):
        t = t[0] if t else None
    if t == "object" or "properties" in s:
        props = s.get("properties", {})
        return {k: example_value(v) for k, v in props.items()}
    if t == "array":
        return [example_value(s.get("items", {})) for _ in range(max(1, int(s.get("minItems", 1))))]
    if t in ("integer", "number"):
        return _number(s, t == "integer")
    if t == "boolean":
        return True
    if t == "string":
        if s.get("contentEncoding") == "base64":
            return _SAMPLE
        if s.get("format") in FORMAT_EXAMPLES:
            return FORMAT_EXAMPLES[s["format"]]
        if "pattern" in s:
            return None  # no generator for a regex: leave it out
        text = "example"
        lo, hi = int(s.get("minLength", 0)), s.get("maxLength")
        text = text.ljust(lo, "x")
        return text[: int(hi)] if hi is not None else text
    return None


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def example_request(svc: ServiceSchema) -> dict[str, Any]:
    """A request body for ``svc`` that its ``schemainput`` accepts (``header.status`` 3: once)."""
    body = _drop_none(example_value(svc.schemainput)) or {}
    header = body.setdefault("header", {})
    header.update({"app_id": "your_app_id", "status": 3})
    for key in ("uid", "did", "request_id", "sid"):
        header.pop(key, None)
    for item in (body.get("payload") or {}).values():
        if isinstance(item, dict) and "status" in item:
            item["status"] = 3
    return body


def _strip(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema embedded in the document: OpenAPI gives the dialect, the operation the title."""
    return {k: v for k, v in schema.items() if k not in ("$schema", "title")}


def _params_text(svc: ServiceSchema) -> str:
    own = (
        svc.schemainput.get("properties", {})
        .get("parameter", {})
        .get("properties", {})
        .get(svc.service_id, {})
    )
    props = own.get("properties", {}) if isinstance(own, dict) else {}
    required = set(own.get("required", [])) if isinstance(own, dict) else set()
    rows = []
    for name, s in props.items():
        if name in svc.accepts or not isinstance(s, dict):
            continue
        rule = ", ".join(
            f"{k} {v}" for k, v in s.items() if k not in ("type", "description", "properties", "items")
        )
        rows.append(
            f"| `{name}` | {s.get('type', '')} | {'yes' if name in required else 'no'} | {rule} | "
            f"{s.get('description', '')} |"
        )
    if not rows:
        return ""
    head = (
        f"\n\nParameters (`parameter.{svc.service_id}`):\n\n"
        "| name | type | required | rules | description |\n|---|---|---|---|---|\n"
    )
    return head + "\n".join(rows)


def _session_text(svc: ServiceSchema, route: str) -> str:
    return (
        f"**Streaming session over WebSocket**: open `ws(s)://HOST{route}` and send text frames with "
        "this request body layout. The first frame has `header.status` 0 and carries `parameter`; "
        "later frames need only `header.status` (1, or 2 for the last) and `payload`. The server "
        "answers with result frames (`header.status` 0/1/2) and closes the socket after the last."
        + (f" Idle limit {svc.read_timeout:g} s." if svc.read_timeout else "")
        + (f" Session limit {svc.session_timeout:g} s." if svc.session_timeout else "")
    )


#: HTTP status -> why a WebSocket's opening GET is answered with it instead of 101.
SESSION_ERROR_CODES: dict[int, str] = {
    401: ERROR_CODES[401],
    403: "10403 not allowed to call this service",
    404: ERROR_CODES[404],
    405: "10163 a GET that is not a WebSocket upgrade",
    429: "10110 over the caller's session limit (retry after Retry-After seconds)",
}


def _errors(codes: dict[int, str]) -> dict[str, Any]:
    return {
        str(status): {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status, text in codes.items()
    }


def _responses(svc: ServiceSchema) -> dict[str, Any]:
    ok = {
        "type": "object",
        "properties": {
            "header": {"$ref": "#/components/schemas/ResponseHeader"},
            "payload": _strip(svc.schemaoutput),
        },
        "required": ["header"],
    }
    success = {"description": "success", "content": {"application/json": {"schema": ok}}}
    return {"200": success, **_errors(ERROR_CODES)}


def _operations(svc: ServiceSchema, route: str) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    # operationIds are unique in a document: a service's second route gets _2, and so on.
    n = svc.routes.index(route)
    suffix = f"_{n + 1}" if n else ""
    summary = svc.description or f"{svc.service_id} {svc.version}"
    tag = [svc.service_id]
    text = _params_text(svc)
    if "once" in svc.modes:
        desc = f"A once request to {svc.service_id} {svc.version}." + text
        if "session" in svc.modes:
            desc += "\n\n" + _session_text(svc, route)
        ops["post"] = {
            "operationId": f"{svc.service_id}_once{suffix}",
            "summary": summary,
            "description": desc,
            "tags": tag,
            "x-ase-interface": list(svc.modes),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _strip(svc.schemainput), "example": example_request(svc)}
                },
            },
            "responses": _responses(svc),
        }
    if "session" in svc.modes and "once" not in svc.modes:
        ops["get"] = {
            "operationId": f"{svc.service_id}_session{suffix}",
            "summary": summary,
            "description": _session_text(svc, route) + text,
            "tags": tag,
            "x-ase-interface": list(svc.modes),
            # OpenAPI cannot describe a WebSocket's frames: the first frame's schema, for tools
            # (`asectl call` reads the data field of each input from it).
            "x-ase-request": _strip(svc.schemainput),
            "responses": {
                "101": {"description": "switching to the WebSocket protocol"},
                **_errors(SESSION_ERROR_CODES),
            },
        }
    return ops


def _components() -> dict[str, Any]:
    header = {
        "type": "object",
        "properties": {
            "code": {"type": "integer", "description": "0 = success, else an error code"},
            "message": {"type": "string"},
            "sid": {"type": "string", "description": "the request's id (quote it when asking for help)"},
            "status": {"type": "integer", "enum": [0, 1, 2, 3]},
        },
        "required": ["code", "message"],
    }
    error = {
        "type": "object",
        "properties": {"header": {"$ref": "#/components/schemas/ResponseHeader"}},
        "required": ["header"],
    }
    return {
        "schemas": {"ResponseHeader": header, "Error": error},
        "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            "hmac": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "HMAC-SHA256 signature of host, date and request line (see the protocol)",
            },
        },
    }


AUTH_TEXT = (
    "Every call needs credentials: an API key (header `X-Api-Key` or query `apikey`) or an "
    "HMAC-SHA256 signature (header `Authorization` with `Date`, or the query parameters "
    "`authorization`, `date`, `host`). To try a call here: **Authorize** with your API key, set "
    "`header.app_id` in the body to your app id, then **Execute**."
)


def openapi_document(
    schemas: Iterable[ServiceSchema], *, title: str = "ASE serving", servers: list[str] | None = None
) -> dict[str, Any]:
    """One OpenAPI 3.1 document for ``schemas``; :class:`ValueError` if two claim the same route."""
    paths: dict[str, Any] = {}
    owners: dict[str, str] = {}
    for svc in sorted(schemas, key=lambda s: (s.service_id, s.version)):
        for route in svc.routes:
            if route in paths:
                raise ValueError(
                    f"route {route} is claimed by {owners[route]} and {svc.service_id} {svc.version}"
                )
            owners[route] = f"{svc.service_id} {svc.version}"
            paths[route] = _operations(svc, route)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": AUTH_TEXT},
        "paths": paths,
        "components": _components(),
        "security": [{"apiKey": []}, {"hmac": []}],
    }
    if servers:
        doc["servers"] = [{"url": u} for u in servers]
    return doc
