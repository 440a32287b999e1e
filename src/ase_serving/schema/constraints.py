"""The API definition's checks on a service schema written as JSON (``asectl config upload`` and
``config edit``), so that a schema pushed by hand is refused for what ``asectl api create`` would
refuse, in the same words: ``minimum 11 > maximum 10: no value can satisfy both``.

The draft-7 meta-schema (:func:`~.service.check_service_schema`) accepts such a schema: every
keyword is well formed, only no request can satisfy it. Each node of ``schemainput`` and
``schemaoutput`` that is a JSON Schema (the values under ``properties``, ``items``,
``additionalProperties``, ``definitions`` and the ``*Of`` lists) is checked with
:func:`~.spec.check_constraints`; a problem is named by its JSON path.
"""

from __future__ import annotations

from typing import Any

from ase_serving.schema.service import Problem, json_path
from ase_serving.schema.spec import Where, check_constraints

__all__ = ["check_schema_constraints"]

_MAPS = ("properties", "definitions", "patternProperties")
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "additionalItems")
_LISTS = ("allOf", "anyOf", "oneOf")


def _walk(node: Any, path: tuple[str | int, ...], out: list[Problem]) -> None:
    if not isinstance(node, dict):
        return
    at = json_path(list(path))
    out.extend(Problem(at, p.message) for p in check_constraints(node, Where("", None, at)))
    for key in _MAPS:
        children = node.get(key)
        if isinstance(children, dict):
            for name, child in children.items():
                _walk(child, (*path, key, str(name)), out)
    for key in _ONE:
        _walk(node.get(key), (*path, key), out)
    items = node.get("items")
    if isinstance(items, list):
        for i, child in enumerate(items):
            _walk(child, (*path, "items", i), out)
    for key in _LISTS:
        children = node.get(key)
        if isinstance(children, list):
            for i, child in enumerate(children):
                _walk(child, (*path, key, i), out)


def check_schema_constraints(doc: dict[str, Any]) -> list[Problem]:
    """Every impossible constraint in ``doc``'s ``schemainput`` and ``schemaoutput`` (a document
    the meta-schema already accepted); [] when there is none."""
    out: list[Problem] = []
    for part in ("schemainput", "schemaoutput"):
        _walk(doc.get(part), (part,), out)
    return out
