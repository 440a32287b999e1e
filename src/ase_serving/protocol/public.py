"""The public JSON protocol (docs/protocol.md) <-> the internal request model, without a schema.

The gateway adds schema checks on top; ``asectl loader test`` uses this directly.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any

import orjson
import pybase64

from ase_serving import errors
from ase_serving.errors import BadRequest
from ase_serving.protocol.items import DataItem, DataType, OutputSpec, Request, Result, Status

#: Keys of a parameter entry that make it an output description ("accept") rather than a value.
OUTPUT_DESC_KEYS = frozenset({"encoding", "compress", "format"})
#: Payload attributes that are not passed on as the item's ``desc``.
_ITEM_FIELDS = frozenset({"status", "seq"})
_DATA_FIELDS = tuple(t.field for t in DataType)
_FIELD_TYPES = {t.field: int(t) for t in DataType}


def parse_body(raw: bytes | str) -> dict[str, Any]:
    """Parse a request body; anything but a JSON object is error 10160."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", errors.BAD_JSON) from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with header/parameter/payload", errors.BAD_JSON)
    return body


#: The most a data item's ``seq`` may be (the seed's int32; the gRPC port carries it as one).
MAX_SEQ = 2**31 - 1


class TooDeep(BadRequest):
    """A value nested deeper than JSON can be written back (orjson's limit, 254 levels)."""


def param_text(value: Any) -> str:
    """A parameter value as the string a wrapper receives (JSON for objects and arrays).

    Raises :class:`TooDeep` for a value nested deeper than can be written as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        raise TooDeep("a value is nested too deeply: at most 254 levels of arrays and objects") from None


def texts(values: dict[str, Any], where: str) -> dict[str, str]:
    """The non-null entries of ``values`` as the strings a wrapper receives; a value nested too
    deeply is 10163 naming it (``where.key``)."""
    try:
        return {k: v if type(v) is str else param_text(v) for k, v in values.items() if v is not None}
    except TooDeep as exc:
        for key, value in values.items():
            try:
                param_text(value)
            except TooDeep:
                raise TooDeep(f"{where}.{key}: {exc.message.removeprefix('a value ')}") from None
        raise


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"'{name}' must be a JSON object, not {type(value).__name__}")
    return value


def _service_params(parameter: dict[str, Any], service_id: str) -> tuple[str, dict[str, Any]]:
    if service_id:
        params = parameter.get(service_id, {})
    elif len(parameter) == 1:
        service_id, params = next(iter(parameter.items()))
    elif not parameter:
        params = {}
    else:
        raise BadRequest(
            f"'parameter' has several services ({', '.join(sorted(parameter))}); "
            "name the service whose parameters to use"
        )
    if not isinstance(params, dict):
        raise BadRequest(f"'parameter.{service_id}' must be a JSON object")
    return service_id, params


def decode_item(name: str, entry: Any, default_status: int) -> DataItem:
    """One ``payload.<name>`` entry -> a data item (base64 decoded; bad base64 is 10161)."""
    if not isinstance(entry, dict):
        raise BadRequest(f"'payload.{name}' must be a JSON object")
    field = ""
    desc: dict[str, str] = {}
    for key, value in entry.items():
        if key in _FIELD_TYPES:
            if field:
                raise _fields_problem(name, entry)
            field = key
        elif key not in _ITEM_FIELDS and value is not None:
            desc[key] = value if type(value) is str else texts({key: value}, f"payload.{name}")[key]
    if not field:
        raise _fields_problem(name, entry)
    encoded = entry[field]
    if not isinstance(encoded, str):
        raise BadRequest(f"'payload.{name}.{field}' must be a base64 string")
    try:
        data = pybase64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadRequest(f"'payload.{name}.{field}' is not valid base64 ({exc})", errors.BAD_BASE64) from None
    status = entry.get("status", default_status)
    if status not in (0, 1, 2, 3):
        raise BadRequest(f"'payload.{name}.status' must be 0, 1, 2 or 3, not {status!r}")
    seq = entry.get("seq", 0)
    if type(seq) is not int:
        seq = 0
    elif not 0 <= seq <= MAX_SEQ:
        raise BadRequest(f"payload.{name}.seq must be 0..{MAX_SEQ}, not {seq}")
    return DataItem(name, data, int(status), _FIELD_TYPES[field], desc, seq)


def _fields_problem(name: str, entry: dict[str, Any]) -> BadRequest:
    fields = [f for f in _DATA_FIELDS if f in entry]
    return BadRequest(
        f"'payload.{name}' must hold exactly one data field named after its type "
        f"({', '.join(_DATA_FIELDS)}); found {', '.join(fields) or 'none'}"
    )


def _status_of(header: dict[str, Any], default: int) -> int:
    status = header.get("status", default)
    if status not in (0, 1, 2, 3):
        raise BadRequest(f"'header.status' must be 0, 1, 2 or 3, not {status!r}")
    return int(status)


def output_spec(name: str, accept: Mapping[str, Any], wanted: Any = None) -> OutputSpec:
    """The loader's description of output ``name``: the schema's ``accept`` entry, with the
    attributes a request asks for (``parameter.<service>.<name>``: encoding, format, ...)."""
    kind = DataType.from_field(str(accept.get("dataType", "text"))) or DataType.OTHER
    desc = {k: param_text(accept[k]) for k in OUTPUT_DESC_KEYS if isinstance(accept.get(k), (str, int))}
    if isinstance(wanted, dict):
        desc.update(texts({k: v for k, v in wanted.items() if k in OUTPUT_DESC_KEYS}, f"parameter.{name}"))
    return OutputSpec(key=name, type=int(kind), desc=desc)


def build_request(
    service_id: str,
    version: str,
    sid: str,
    header: dict[str, Any],
    params: dict[str, Any],
    items: list[DataItem],
    status: int,
    accepts: Mapping[str, Mapping[str, Any]] | None = None,
    default_expect: list[OutputSpec] | None = None,
) -> Request:
    """The loader's request: the one conversion the gateway, ``asectl loader test`` and ``loader
    call`` share.

    With the service schema's outputs (``accepts``, its ``accept`` section), a parameter named
    after an output asks for that output's attributes and every output is in ``expect``
    (``default_expect``: the list for no parameters, made once by the caller). Without a schema,
    a parameter whose value is an object of output attributes only is taken as one."""
    headers = texts(header, "header")
    headers["sid"] = sid
    if accepts is None:
        req = Request(service_id, version, sid, headers, {}, [], [], items, status)
        for key, value in params.items():
            if isinstance(value, dict) and value and set(value) <= OUTPUT_DESC_KEYS | {"type"}:
                req.expect.append(OutputSpec(key=key, desc=texts(value, f"parameter.{service_id}.{key}")))
            elif value is not None:
                req.params[key] = texts({key: value}, f"parameter.{service_id}")[key]
        return req
    if not params:
        expect = (
            default_expect if default_expect is not None else [output_spec(n, a) for n, a in accepts.items()]
        )
        return Request(service_id, version, sid, headers, {}, expect, [], items, status)
    req_params = texts({k: v for k, v in params.items() if k not in accepts}, f"parameter.{service_id}")
    expect = [output_spec(name, accept, params.get(name)) for name, accept in accepts.items()]
    return Request(service_id, version, sid, headers, req_params, expect, [], items, status)


def request_from_public(
    body: dict[str, Any],
    service_id: str = "",
    version: str = "",
    sid: str = "",
    accepts: Mapping[str, Mapping[str, Any]] | None = None,
) -> Request:
    """A public request body (or a session's first frame) -> the loader's request
    (:func:`build_request`; ``accepts``: the schema's outputs, when known)."""
    header = _object(body, "header")
    parameter = _object(body, "parameter")
    payload = _object(body, "payload")
    service_id, params = _service_params(parameter, service_id)
    status = _status_of(header, Status.ONCE)
    items = [decode_item(name, entry, status) for name, entry in payload.items()]
    return build_request(service_id, version, sid, header, params, items, status, accepts)


def frame_from_public(body: dict[str, Any]) -> tuple[int, list[DataItem]]:
    """A later session frame -> (frame status, its data items)."""
    header = _object(body, "header")
    status = _status_of(header, Status.CONTINUE)
    payload = _object(body, "payload")
    return status, [decode_item(name, entry, status) for name, entry in payload.items()]


def item_to_public(item: DataItem) -> dict[str, Any]:
    """A result item -> its ``payload.<key>`` entry (data base64-encoded under its type's name)."""
    entry: dict[str, Any] = dict(item.desc)
    entry["status"] = item.status
    kind = item.type
    field = _DATA_FIELDS[kind] if 0 <= kind < len(_DATA_FIELDS) else "other"
    entry[field] = pybase64.b64encode_as_string(item.data)
    return entry


def result_to_public(result: Result, session: bool = False) -> dict[str, Any]:
    """A result -> the public response body (an error carries only the header)."""
    header: dict[str, Any] = {"code": result.code, "message": result.message, "sid": result.sid}
    if session:
        header["status"] = result.status
    out: dict[str, Any] = {"header": header}
    if result.code == 0:
        out["payload"] = {item.key: item_to_public(item) for item in result.items}
    return out
