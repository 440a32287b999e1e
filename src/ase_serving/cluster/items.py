"""Config items as ``asectl config`` shows and checks them: documents, name lookup, schema checks."""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Any

from ase_serving.schema import Problem, check_service_schema, parse_json
from ase_serving.store import ConfigItem, ConfigKey, ConfigScope, ConfigStore, NotFound, StoreError


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
    """``name`` (a live item's file name) or ``service/version/name`` (also a deleted item's) -> key.

    :class:`NotFound` when nothing matches, :class:`Ambiguous` when several items share the name.
    """
    parts = name.split("/")
    if len(parts) == 3:
        return ConfigKey(scope.project, scope.group, *parts)
    if len(parts) != 1:
        raise NotFound(f"{name!r} is neither an item name nor service/version/name")
    items, _ = await store.list(scope)
    keys = [i.key for i in items if i.key.name == name]
    if not keys:
        raise NotFound(
            f"no config item named {name!r} in project {scope.project}, group {scope.group} "
            "(see `asectl config list`; a deleted item is named service/version/name)"
        )
    if len(keys) > 1:
        raise Ambiguous(name, keys)
    return keys[0]


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
    return Checked(True, meta, check_service_schema(doc, service, version))
