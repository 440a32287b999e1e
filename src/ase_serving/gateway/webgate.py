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

from ase_serving.errors import BadRequest
from ase_serving.gateway.routes import Service
from ase_serving.protocol.items import DataItem
from ase_serving.protocol.public import decode_item, parse_body
from ase_serving.schema import validate

__all__ = ["check", "parse_body", "payload_items"]


def check(svc: Service, body: dict[str, Any], first: bool = True) -> None:
    """Raise the schema problem of ``body``: a once request or first frame, else a later frame
    (:mod:`ase_serving.schema.validate`, which ``asectl loader test`` uses too)."""
    validate.check(svc.validator if first else svc.frame_validator, body)


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
