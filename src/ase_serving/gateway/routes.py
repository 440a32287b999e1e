"""The live routes: service schemas from the config centre, each compiled once per revision.

:class:`RouteTable` is fed the config view's events (:meth:`RouteTable.apply`). Every item that
is a service schema becomes a :class:`Service`: its schema, its two validators (the whole body
of a once request or a session's first frame; and the relaxed one for later frames, which need
only ``header.status`` and ``payload``) and its limits (schema values over gateway defaults).
An item that is not a valid service schema is kept out with its reason in
:attr:`RouteTable.problems`; other config items are ignored.

When two schemas claim one route, the one with the highest version wins (then the newest
write), and the loser is listed in ``problems``: a route always means one service.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

from ase_serving import errors
from ase_serving.gateway.settings import GatewaySettings
from ase_serving.schema.loaded import ServiceSchema, load_service_schema
from ase_serving.schema.service import ServiceSchemaError, is_service_schema, parse_json
from ase_serving.schema.validate import compile_validator, frame_schema
from ase_serving.store.base import ConfigEvent, ConfigItem, ConfigKey

log = logging.getLogger("ase_serving.gateway")

__all__ = ["RouteTable", "Service", "frame_schema"]


@dataclass
class Service:
    """One live service schema, ready to serve."""

    key: ConfigKey
    revision: int
    schema: ServiceSchema
    validator: jsonschema_rs.Validator
    frame_validator: jsonschema_rs.Validator
    queue_timeout: float
    read_timeout: float
    session_timeout: float
    max_body: int
    max_frame: int
    #: ``Host`` names the route answers for (without port); empty = any.
    hosts: frozenset[str] = field(default_factory=frozenset)
    #: What the request path derives from the schema once (e.g. the default expected outputs).
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def service_id(self) -> str:
        return self.schema.service_id

    @property
    def version(self) -> str:
        return self.schema.version

    def serves(self, mode: str) -> bool:
        return mode in self.schema.modes

    def http_status(self, code: int) -> int:
        """The HTTP status of a result's code: 400 for the wrapper's codes the schema declares as
        the request's fault (``client_errors``), else the protocol's."""
        return 400 if code in self.schema.client_errors else errors.http_status(code)

    @classmethod
    def build(cls, item: ConfigItem, schema: ServiceSchema, defaults: GatewaySettings) -> Service:
        return cls(
            key=item.key,
            revision=item.revision,
            schema=schema,
            validator=compile_validator(schema.schemainput),
            frame_validator=compile_validator(frame_schema(schema.schemainput)),
            queue_timeout=schema.queue_timeout or defaults.queue_timeout,
            read_timeout=schema.read_timeout or defaults.read_timeout,
            session_timeout=schema.session_timeout or defaults.session_timeout,
            max_body=schema.max_body or defaults.max_body,
            max_frame=schema.max_frame or defaults.max_frame,
            hosts=frozenset(h.split(":")[0].lower() for h in schema.hosts),
        )


def _version_key(version: str) -> tuple[tuple[int, Any], ...]:
    # "1.10.0" > "1.9.2": numeric parts compare as numbers, others as text after them.
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-_+]", version))


class RouteTable:
    """Route path -> :class:`Service`, rebuilt from config events; read by every request."""

    def __init__(self, defaults: GatewaySettings) -> None:
        self.defaults = defaults
        #: Every loaded service schema by config key.
        self.services: dict[ConfigKey, Service] = {}
        #: Config items that are service schemas but cannot be loaded, with the reason.
        self._invalid: dict[str, str] = {}
        #: Schemas that lost a route to another one (recomputed with the routes).
        self._conflicts: dict[str, str] = {}
        self.routes: dict[str, Service] = {}
        #: +1 on every change (OpenAPI documents are cached per generation).
        self.generation = 0

    @property
    def problems(self) -> dict[str, str]:
        """Config items that are service schemas but are not served (fully or on some route), why."""
        return {**self._conflicts, **self._invalid}

    def lookup(self, path: str, host: str | None = None) -> Service | None:
        svc = self.routes.get(path)
        if svc is None and len(path) > 1 and path.endswith("/"):
            svc = self.routes.get(path.rstrip("/"))
        if svc is not None and svc.hosts and (host or "").split(":")[0].lower() not in svc.hosts:
            return None
        return svc

    def apply(self, events: list[ConfigEvent]) -> None:
        """Apply config changes (the config view's ``on_change``)."""
        changed = False
        for ev in events:
            changed |= self._apply(ev)
        if changed:
            self._rebuild_routes()

    def _apply(self, ev: ConfigEvent) -> bool:
        path = ev.key.path
        if ev.kind == "delete" or ev.item is None:
            self._invalid.pop(path, None)
            return self.services.pop(ev.key, None) is not None
        item = ev.item
        old = self.services.get(ev.key)
        if old is not None and old.revision == item.revision:
            return False
        doc, problem = parse_json(item.content)
        if problem is not None or not is_service_schema(doc):
            # Not a service schema (any file may live in the config centre): not a route.
            self._invalid.pop(path, None)
            return self.services.pop(ev.key, None) is not None
        try:
            schema = load_service_schema(doc, f"config item {path} (revision {item.revision})")
            svc = Service.build(item, schema, self.defaults)
        except (ServiceSchemaError, ValueError) as exc:
            self._invalid[path] = str(exc)
            log.warning("not serving %s: %s", path, exc)
            return self.services.pop(ev.key, None) is not None
        self._invalid.pop(path, None)
        self.services[ev.key] = svc
        log.info("serving %s revision %d at %s", path, item.revision, ", ".join(schema.routes))
        return True

    def _rebuild_routes(self) -> None:
        routes: dict[str, Service] = {}
        conflicts: dict[str, str] = {}
        ranked = sorted(
            self.services.values(),
            key=lambda s: (_version_key(s.version), s.revision, s.key.path),
            reverse=True,
        )
        for svc in ranked:
            for route in svc.schema.routes:
                holder = routes.get(route)
                if holder is None:
                    routes[route] = svc
                else:
                    conflicts[svc.key.path] = (
                        f"route {route} is served by {holder.key.path} (version {holder.version}); "
                        f"this schema (version {svc.version}) is not served there"
                    )
        self.routes = routes
        self._conflicts = conflicts
        self.generation += 1

    def live(self) -> list[Service]:
        """The services that serve at least one route, sorted by service id and version."""
        seen = {id(s): s for s in self.routes.values()}
        return sorted(seen.values(), key=lambda s: (s.service_id, _version_key(s.version)))

    def served_schemas(self) -> list[ServiceSchema]:
        """The live schemas, each with only the routes it serves here (what the docs describe)."""
        return [
            dataclasses.replace(s.schema, routes=[r for r in s.schema.routes if self.routes.get(r) is s])
            for s in self.live()
        ]
