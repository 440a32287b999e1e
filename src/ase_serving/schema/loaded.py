"""A service schema as a gateway reads it: ours, or a file of the gateway this design comes from.

Such files share our shape (``meta`` / ``schemainput`` / ``schemaoutput``) but may differ in the
details: ``hosts`` is a string, ``meta.service`` lists ids, ``call``/``call_type`` name the
backend, there is no ``interface`` (both once and session are then served). They load as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ase_serving.schema.service import ServiceSchemaError, check_service_schema, parse_json, schema_routes
from ase_serving.schema.spec import MODES

__all__ = ["ServiceSchema", "load_service_schema"]


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(value)


def _bytes(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _mapping(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        return {}
    return {str(k): dict(v) if isinstance(v, dict) else {} for k, v in value.items()}


@dataclass(frozen=True)
class ServiceSchema:
    """The parts of a service schema a gateway routes, converts and documents with."""

    service_id: str
    version: str
    routes: list[str]
    modes: list[str]
    #: payload name -> {"dataType": "audio", "encoding": ..., ...}
    inputs: dict[str, dict[str, Any]]
    #: output name -> {"dataType": "text", ...}
    accepts: dict[str, dict[str, Any]]
    schemainput: dict[str, Any]
    schemaoutput: dict[str, Any]
    hosts: list[str] = field(default_factory=list)
    sub: str = "ase"
    read_timeout: float | None = None
    session_timeout: float | None = None
    queue_timeout: float | None = None
    max_body: int | None = None
    max_frame: int | None = None
    #: The wrapper's codes that mean a bad request (HTTP 400, close 1008).
    client_errors: frozenset[int] = frozenset()
    description: str = ""
    doc: dict[str, Any] = field(default_factory=dict)


def load_service_schema(content: bytes | dict[str, Any], source: str = "service schema") -> ServiceSchema:
    """Parse and check a service schema; :class:`ServiceSchemaError` lists every problem."""
    if isinstance(content, (bytes, bytearray)):
        doc, problem = parse_json(bytes(content))
        if problem is not None:
            raise ServiceSchemaError(source, [problem])
    else:
        doc = content
    problems = check_service_schema(doc)
    if problems:
        raise ServiceSchemaError(source, problems)
    meta: dict[str, Any] = doc["meta"]
    sid = meta["serviceId"]
    interface = meta.get("interface")
    modes = [interface] if isinstance(interface, str) else interface
    if not isinstance(modes, list) or not modes or any(m not in MODES for m in modes):
        modes = list(MODES)
    hosts = meta.get("hosts")
    if isinstance(hosts, str):
        hosts = [h.strip() for h in hosts.split(",") if h.strip()]
    own = meta.get(sid) if isinstance(meta.get(sid), dict) else {}
    assert isinstance(own, dict)
    output = doc["schemaoutput"] if isinstance(doc["schemaoutput"], dict) else {}
    return ServiceSchema(
        service_id=sid,
        version=meta["version"],
        routes=schema_routes(doc),
        modes=list(modes),
        inputs=_mapping(own.get("input")),
        accepts=_mapping(own.get("accept")),
        schemainput=doc["schemainput"] if isinstance(doc["schemainput"], dict) else {},
        schemaoutput=output,
        hosts=list(hosts) if isinstance(hosts, list) else [],
        sub=str(meta.get("sub") or "ase"),
        read_timeout=_seconds(meta.get("read_timeout")),
        session_timeout=_seconds(meta.get("session_timeout")),
        queue_timeout=_seconds(meta.get("queue_timeout")),
        max_body=_bytes(meta.get("max_body")),
        max_frame=_bytes(meta.get("max_frame")),
        client_errors=frozenset(
            c for c in meta.get("client_errors") or () if isinstance(c, int) and not isinstance(c, bool)
        ),
        description=str(meta.get("description") or ""),
        doc=doc,
    )
