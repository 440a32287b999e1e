"""What ``asectl call`` learns from the gateway before it calls: how the service is called (once,
session) and each input's data field, read from the service's OpenAPI document.

``--data audio=@x.pcm`` names an input, not its type; sent as text it fails with
``payload.audio.audio is required``. The request schema says which data field each input takes
(``payload.<name>.required`` holds it), so the type is taken from there when ``--data`` does not
give one. ``x-ase-interface`` says whether the service takes once requests, sessions or both, so
a call of the wrong kind is refused with the flag to change before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from ase_serving.client.core import DATA_FIELDS, decode_body, too_slow, unreachable


@dataclass
class ServiceDoc:
    """One service as its OpenAPI document describes it."""

    service: str
    #: "once" and/or "session"; empty when the document does not say (an older gateway).
    modes: list[str] = field(default_factory=list)
    #: Input name -> its data field (text, audio, ...).
    inputs: dict[str, str] = field(default_factory=dict)
    #: Input name -> the encodings its schema allows (empty: any).
    encodings: dict[str, list[str]] = field(default_factory=dict)
    #: The payload takes no input but those listed.
    closed: bool = False


def _get(client: httpx.Client, url: str, timeout: float) -> httpx.Response:
    try:
        return client.get(url)
    except httpx.TimeoutException:
        raise too_slow(url, timeout) from None
    except httpx.TransportError as exc:
        raise unreachable(url, exc) from None


def _read(doc: dict[str, Any], service: str, ops: dict[str, Any]) -> ServiceDoc:
    out = ServiceDoc(service)
    for op in ops.values():
        if isinstance(op, dict) and isinstance(op.get("x-ase-interface"), list):
            out.modes = [str(m) for m in op["x-ase-interface"]]
    schema: Any = None
    post = ops.get("post")
    if isinstance(post, dict):
        content = post.get("requestBody", {}).get("content", {}).get("application/json", {})
        schema = content.get("schema")
    if schema is None and isinstance(ops.get("get"), dict):
        schema = ops["get"].get("x-ase-request")
    payload = schema.get("properties", {}).get("payload") if isinstance(schema, dict) else None
    if not isinstance(payload, dict):
        return out
    out.closed = payload.get("additionalProperties") is False
    for name, entry in (payload.get("properties") or {}).items():
        if not isinstance(entry, dict):
            continue
        wanted = [f for f in entry.get("required") or [] if f in DATA_FIELDS]
        if len(wanted) == 1:
            out.inputs[name] = wanted[0]
        enum = (entry.get("properties") or {}).get("encoding", {}).get("enum")
        if isinstance(enum, list):
            out.encodings[name] = [str(e) for e in enum]
    return out


def describe(base_url: str, service: str, timeout: float) -> ServiceDoc:
    """The service (a serviceId, or a route) as the gateway at ``base_url`` documents it.

    :class:`~ase_serving.client.AseClientError` as the client raises it: 10404 when the gateway
    serves no such service, -1 when it cannot be reached."""
    base = base_url.rstrip("/")
    with httpx.Client(timeout=timeout) as client:
        if service.startswith("/"):
            where = f"{base}/openapi.json"
            resp = _get(client, where, timeout)
            doc = decode_json(resp, where)
            ops = (doc.get("paths") or {}).get(service.rstrip("/") or "/")
            if not isinstance(ops, dict):
                return ServiceDoc(service)  # the call itself answers 10404, with the list
            tags = [t for op in ops.values() if isinstance(op, dict) for t in op.get("tags") or []]
            return _read(doc, str(tags[0]) if tags else service, ops)
        where = f"{base}/openapi/{quote(service, safe='')}.json"
        resp = _get(client, where, timeout)
        doc = decode_json(resp, where)
        for ops in (doc.get("paths") or {}).values():
            if isinstance(ops, dict):
                return _read(doc, service, ops)
    return ServiceDoc(service)


def decode_json(resp: httpx.Response, where: str) -> dict[str, Any]:
    """The JSON document of a 200 answer; the gateway's error (10404 ...) raised otherwise."""
    if resp.status_code != 200:
        decode_body(resp.content, where, resp.status_code)  # raises the gateway's error
    try:
        doc = resp.json()
    except ValueError:
        doc = None
    return doc if isinstance(doc, dict) else {}


def served(base_url: str, timeout: float) -> list[str]:
    """The service ids the gateway serves (from /openapi.json); [] when it cannot be asked."""
    try:
        resp = httpx.get(f"{base_url.rstrip('/')}/openapi.json", timeout=timeout)
        paths = resp.json().get("paths") or {}
    except (httpx.HTTPError, ValueError, AttributeError):
        return []
    names = {
        str(tag)
        for ops in paths.values()
        if isinstance(ops, dict)
        for op in ops.values()
        if isinstance(op, dict)
        for tag in op.get("tags") or []
    }
    return sorted(names)
