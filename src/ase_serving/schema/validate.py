"""A request body checked against its service schema, as the gateway checks it (its webgate stage).

One implementation for the gateway and ``asectl loader test``: a test case whose request the gateway
would refuse fails locally with the same code and message. :class:`RequestValidator` compiles a
schema's ``schemainput`` twice (the whole body of a once request or a session's first frame; the
relaxed form of later frames, which need only ``header.status`` and ``payload``) and raises the
protocol's errors with messages that name the field and the rule:

* 10163 the body breaks the schema (the first problem the validator finds, with its JSON path;
  a string not of its ``format`` also says what one looks like),
  or it breaks it with a value nested deeper than JSON can be written back (254 levels), which
  the validator cannot describe: then the field holding that value is named;
* 10313 ``header.app_id`` is missing (HTTP 400);
* 10161 a payload entry's data is not valid base64.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema_rs
import orjson

from ase_serving import errors
from ase_serving.errors import AppIdMissing, AseError, BadRequest
from ase_serving.protocol.public import TooDeep
from ase_serving.schema.openapi import FORMAT_EXAMPLES

__all__ = ["RequestValidator", "compile_validator", "frame_schema"]

#: A message quoting a huge value (a base64 string) is cut to this many characters.
_MESSAGE_MAX = 300
#: Levels of arrays and objects a value may be nested (orjson's limit; jsonschema-rs describes an
#: error only in a value nested at most about as deep).
_DEPTH_MAX = 254


def compile_validator(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """The draft-7 validator of ``schema``, formats checked (spec.STRING_FORMATS: a "date-time"
    that is not one is 10163), as the schema check and /openapi.json promise."""
    return jsonschema_rs.Draft7Validator(schema, validate_formats=True)


def frame_schema(schemainput: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a session's later frames: what the first frame allows, nothing required
    but the data field inside each payload entry present, and no ``parameter`` check."""
    out = copy.deepcopy(schemainput)
    out.pop("required", None)
    props = out.get("properties")
    if isinstance(props, dict):
        props.pop("parameter", None)
        for part in ("header", "payload"):
            sub = props.get(part)
            if isinstance(sub, dict):
                sub.pop("required", None)
    return out


class RequestValidator:
    """The two validators of one service schema's ``schemainput``, and the check that uses them."""

    def __init__(self, schemainput: dict[str, Any]) -> None:
        self.first = compile_validator(schemainput)
        self.frames = compile_validator(frame_schema(schemainput))

    def check(self, body: dict[str, Any], first: bool = True) -> None:
        """Raise the schema problem of ``body``: a once request or first frame, else a later frame."""
        check(self.first if first else self.frames, body)


def check(validator: jsonschema_rs.Validator, body: dict[str, Any]) -> None:
    """Raise the first problem ``validator`` finds in ``body`` as the protocol's error."""
    if validator.is_valid(body):
        return
    try:
        err = next(iter(validator.iter_errors(body)), None)
    except ValueError:  # "Recursion limit reached": the error's value is nested too deeply
        raise _too_deep(body) from None
    if err is not None:
        raise _problem(err)


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
