"""Config items as ``asectl config`` shows and checks them: documents, name lookup, schema checks."""

from __future__ import annotations

import base64
import datetime
import difflib
from dataclasses import dataclass
from typing import Any

from ase_serving.schema import Problem, check_service_schema, is_service_schema, parse_json, schema_routes
from ase_serving.store import ConfigItem, ConfigKey, ConfigScope, ConfigStore, NotFound, StoreError


class RouteTaken(StoreError):
    """A service schema asks for a route another schema of the scope asks for (see
    :func:`clash_message`)."""


class Ambiguous(StoreError):
    """A bare item name matches items of several services/versions."""

    def __init__(self, name: str, candidates: list[ConfigKey]) -> None:
        self.candidates = candidates
        listed = ", ".join(f"{k.service}/{k.version}/{k.name}" for k in candidates)
        super().__init__(f"{name!r} names {len(candidates)} items: give one of {listed}")


def iso_time(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def item_doc(item: ConfigItem) -> dict[str, Any]:
    """The fields ``config list``/``show`` print for one item revision."""
    k = item.key
    return {
        "project": k.project,
        "group": k.group,
        "service": k.service,
        "version": k.version,
        "name": k.name,
        "revision": item.revision,
        "updated": iso_time(item.updated),
        "size": len(item.content),
    }


def content_doc(item: ConfigItem) -> dict[str, Any]:
    """``item_doc`` plus the content: text when it is UTF-8, else ``content_base64``."""
    doc = item_doc(item)
    try:
        doc["content"] = item.content.decode("utf-8")
    except UnicodeDecodeError:
        doc["content_base64"] = base64.b64encode(item.content).decode()
    return doc


async def resolve(store: ConfigStore, scope: ConfigScope, name: str) -> ConfigKey:
    """``name`` (a live item's file name, ``.json`` may be left out) or ``service/version/name``
    (also a deleted item's) -> key.

    :class:`NotFound` (with the closest names) when nothing matches, :class:`Ambiguous` when
    several items share the name.
    """
    parts = name.split("/")
    if len(parts) == 3:
        return ConfigKey(scope.project, scope.group, *parts)
    if len(parts) != 1:
        raise NotFound(f"{name!r} is neither an item name nor service/version/name")
    items, _ = await store.list(scope)
    keys = [i.key for i in items if i.key.name == name]
    if not keys and not name.endswith(".json"):
        keys = [i.key for i in items if i.key.name == f"{name}.json"]
    if not keys:
        raise NotFound(
            f"no config item named {name!r} in project {scope.project}, group {scope.group}"
            f"{_suggest(name, [i.key for i in items])} (see `asectl config list`; a deleted item is "
            "named service/version/name)"
        )
    if len(keys) > 1:
        raise Ambiguous(name, keys)
    return keys[0]


def _suggest(name: str, keys: list[ConfigKey]) -> str:
    """``; did you mean 'echo.json'?`` from the names that look like ``name`` (or whose service it is)."""
    names = sorted({k.name for k in keys})
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    close += [k.name for k in keys if name in (k.service, k.name.rsplit(".", 1)[0]) and k.name not in close]
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(n) for n in dict.fromkeys(close)) + "?"


async def check_routes(
    store: ConfigStore, key: ConfigKey, content: bytes, what: str, force: bool
) -> list[str]:
    """:class:`RouteTaken` when the service schema ``content`` (to be written under ``key``) asks
    for a route another schema of its scope has; with ``force`` the warnings to print instead."""
    doc, problem = parse_json(content)
    if problem is not None or not is_service_schema(doc):
        return []
    clashes = await route_clashes(store, ConfigScope(key.project, key.group), key, doc)
    if not clashes:
        return []
    if not force:
        raise RouteTaken(clash_message(what, key, clashes))
    return [
        f"{what}: route {', '.join(routes)} is also asked for by {k.service}/{k.version}/{k.name}: "
        "the gateway serves the highest version there and lists the other as not served"
        for k, routes in clashes
    ]


async def route_clashes(
    store: ConfigStore, scope: ConfigScope, key: ConfigKey, doc: dict[str, Any]
) -> list[tuple[ConfigKey, list[str]]]:
    """The other service schemas in ``scope`` that ask for a route ``doc`` asks for, with those
    routes. A gateway serves one schema per route (the highest version) and lists the others as
    not served, so a second schema for a route is a conflict nobody sees until a call fails."""
    mine = set(schema_routes(doc))
    items, _ = await store.list(scope)
    out: list[tuple[ConfigKey, list[str]]] = []
    for item in items:
        if item.key == key:
            continue
        other, problem = parse_json(item.content)
        if problem is not None or not is_service_schema(other):
            continue
        shared = sorted(mine & set(schema_routes(other)))
        if shared:
            out.append((item.key, shared))
    return out


def clash_message(what: str, key: ConfigKey, clashes: list[tuple[ConfigKey, list[str]]]) -> str:
    """One line: which routes are taken by which items, and the three ways out."""
    other, routes = clashes[0]
    shown = f"{other.service}/{other.version}/{other.name}"
    more = f" (and {len(clashes) - 1} other item(s))" if len(clashes) > 1 else ""
    return (
        f"{what}: route {', '.join(routes)} is already asked for by {shown}{more} in project "
        f"{key.project}, group {key.group}; a gateway serves one schema per route (the highest "
        f"version) and leaves the other unserved: update that item (`asectl config edit {other.name}`), "
        f"delete it (`asectl config delete {shown}`), or add --force to store both"
    )


@dataclass(frozen=True)
class Checked:
    """What an upload/edit would write: whether it is a service schema, its meta, its problems."""

    schema: bool
    meta: dict[str, Any]
    problems: list[Problem]


def looks_like_schema(doc: Any) -> bool:
    """A JSON object that is (or tries to be) a service schema: it has ``schemainput`` or a
    ``meta`` with a ``serviceId``."""
    if not isinstance(doc, dict):
        return False
    meta = doc.get("meta")
    return "schemainput" in doc or (isinstance(meta, dict) and "serviceId" in meta)


def check_content(
    name: str,
    content: bytes,
    service: str | None = None,
    version: str | None = None,
    schema: bool = False,
) -> Checked:
    """Check content before it is written. It is checked as a service schema when it looks like
    one, or when ``schema`` says it must be one (an edit of a schema); a ``.json`` file must at
    least be valid JSON."""
    doc, syntax = parse_json(content)
    if syntax is not None:
        if schema or name.endswith(".json"):
            return Checked(schema, {}, [syntax])
        return Checked(False, {}, [])
    if not (schema or looks_like_schema(doc)):
        return Checked(False, {}, [])
    meta = doc.get("meta") if isinstance(doc, dict) else None
    meta = dict(meta) if isinstance(meta, dict) else {}
    problems = check_service_schema(doc, service, version)
    if not problems:
        # Well formed, but can a request satisfy it? The checks `asectl api create` makes.
        from ase_serving.schema.constraints import check_schema_constraints

        problems = check_schema_constraints(doc)
    return Checked(True, meta, problems)
