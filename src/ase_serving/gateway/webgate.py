"""The webgate stage: a request body (or session frame) checked against its service schema.

Transport-free: it takes bytes and parsed JSON, and raises the protocol's errors
(:mod:`ase_serving.errors`) with messages that name the field and the rule:

* 10160 the body is not a JSON object;
* 10163 the body breaks the schema (the first problem the validator finds, with its JSON path;
  a string not of its ``format`` also says what one looks like),
  or it breaks it with a value nested deeper than JSON can be written back (254 levels), which
  the validator cannot describe: then the field holding that value is named;
* 10313 ``header.app_id`` is missing (HTTP 400);
* 10161 a payload entry's data is not valid base64 (decoding happens here, once).
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import orjson

from ase_serving import errors
from ase_serving.errors import AppIdMissing, AseError, BadRequest
from ase_serving.gateway.routes import Service
from ase_serving.protocol.items import DataItem
from ase_serving.protocol.public import TooDeep, decode_item, parse_body
from ase_serving.schema.openapi import FORMAT_EXAMPLES

__all__ = ["check", "parse_body", "payload_items"]

#: A message quoting a huge value (a base64 string) is cut to this many characters.
_MESSAGE_MAX = 300
#: Levels of arrays and objects a value may be nested (orjson's limit; jsonschema-rs describes an
#: error only in a value nested at most about as deep).
_DEPTH_MAX = 254


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(err: jsonschema_rs.ValidationError) -> AseError:
    where = _where(err.instance_path)
    message = err.message
    if len(message) > _MESSAGE_MAX:
        message = message[: _MESSAGE_MAX - 3] + "..."
    kind = type(err.kind).__name__
    if kind == "Required":
        missing = getattr(err.kind, "property", "?")
        field = f"{where}.{missing}" if where else str(missing)
        if field in ("header", "header.app_id"):
            return AppIdMissing("header.app_id is required: send the app id your API key belongs to")
        return BadRequest(f"{field} is required")
    if kind == "ContentEncoding":
        return BadRequest(f"{where} is not valid base64", errors.BAD_BASE64)
    fmt = getattr(err.kind, "format", None) if kind == "Format" else None
    if fmt in FORMAT_EXAMPLES:
        example = orjson.dumps(FORMAT_EXAMPLES[fmt]).decode()
        return BadRequest(f"{where or 'the body'}: {message}: send one such as {example}")
    return BadRequest(f"{where or 'the body'}: {message}")


def check(svc: Service, body: dict[str, Any], first: bool = True) -> None:
    """Raise the schema problem of ``body``: a once request or first frame, else a later frame."""
    validator = svc.validator if first else svc.frame_validator
    if validator.is_valid(body):
        return
    try:
        err = next(iter(validator.iter_errors(body)), None)
    except ValueError:  # "Recursion limit reached": the error's value is nested too deeply
        raise _too_deep(body) from None
    if err is not None:
        raise _problem(err)


def _too_deep(body: dict[str, Any]) -> AseError:
    """10163 naming the field of ``body`` that holds a value nested past :data:`_DEPTH_MAX`."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(body, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > _DEPTH_MAX:
            field = []
            for part in path[:3]:
                if not isinstance(part, str):
                    break
                field.append(part)
            return TooDeep(
                f"{'.'.join(field)}: is nested too deeply: at most {_DEPTH_MAX} levels of arrays and objects"
            )
        if isinstance(node, dict):
            stack.extend((value, (*path, key)) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, (*path, i)) for i, value in enumerate(node))
    return BadRequest("the body breaks the schema in a way the validator cannot describe")


def payload_items(body: dict[str, Any], default_status: int) -> list[DataItem]:
    """The body's payload entries as data items, base64 decoded (10161 for bad base64)."""
    payload = body.get("payload")
    if payload is None:
        return []
    if not isinstance(payload, dict):
        raise BadRequest(f"payload must be a JSON object, not {type(payload).__name__}")
    return [decode_item(name, entry, default_status) for name, entry in payload.items()]


def frame_status(body: dict[str, Any], default: int) -> int:
    """``header.status`` of a frame (the schema has checked it is 0..3)."""
    header = body.get("header")
    status = header.get("status", default) if isinstance(header, dict) else default
    if status not in (0, 1, 2, 3):
        raise BadRequest(f"header.status must be 0, 1, 2 or 3, not {status!r}")
    return int(status)
