"""What the page shows as you type: the YAML, its problems and warnings, the schema, examples.

Every check is ``asectl api create``'s own: the design is written as ApiSchema YAML
(:func:`.design.design_yaml`) and compiled with :func:`~ase_serving.schema.from_yaml_text`, the
reader and checks of ``api create``. This module adds no rule; it only says which field of the
page each problem is about (:func:`locate`), so that the page can show it there, in the same words.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ase_serving.designer.design import design_yaml
from ase_serving.schema import ApiDefinitionError, ApiProblem, Compiled, from_yaml_text
from ase_serving.schema.loaded import load_service_schema
from ase_serving.schema.openapi import example_request
from ase_serving.schema.spec import LIMITS

__all__ = ["FILE", "check_design", "check_text", "compile_design", "locate"]

#: The name problems give the file (``ai_api.yml:12: spec...``), as ``api create -f ai_api.yml``.
FILE = "ai_api.yml"
_PARAMS = "spec.request.parameters"
_TABLES = {
    "spec.request.parameters.properties.": "params",
    "spec.request.payload.properties.": "inputs",
    "spec.response.payload.properties.": "outputs",
}
#: A problem of the spec as a whole (``check_spec`` names the spec): the field its words are about.
_SPEC_WORDS = [
    ("service id ", "metadata.serviceName"),
    ("version ", "metadata.version"),
    ("client_errors", "service.client_errors"),
    ("interface ", "service.interface"),
    ("route ", "service.route"),
    *((f"metadata.{k} ", f"metadata.{k}") for k in ("name", "configFileName", "projectName", "group")),
    ("metadata.region ", "metadata.region"),
    *((f"{k} ", f"service.{k}") for k in LIMITS),
]
_KEYWORD = re.compile(
    r"^(?:unknown |duplicate |required )?(?:parameter |property |input |output |data )?(\w+)"
)


def _row(rows: list[dict[str, Any]], rest: str, at: str) -> tuple[list[str], str]:
    """The rows that ``rest`` (``speed.properties.x.maximum``) is about, and what follows them."""
    found: list[str] = []
    tail = ""
    for i, row in enumerate(rows):
        name = str(row.get("name", ""))
        if rest == name or rest.startswith(name + "."):
            found.append(f"{at}.{i}")
            tail = rest[len(name) + 1 :]
    if len(found) != 1:
        return found, tail
    row = rows[int(found[0].rsplit(".", 1)[1])]
    if tail.startswith("properties.") and isinstance(row.get("properties"), list):
        deeper, deeper_tail = _row(row["properties"], tail[len("properties.") :], f"{found[0]}.properties")
        if deeper:
            return deeper, deeper_tail
    if (tail == "items" or tail.startswith("items.")) and isinstance(row.get("items"), dict):
        return _row([row["items"]], tail, f"{found[0]}.items")
    return found, tail


def locate(problem: ApiProblem, design: dict[str, Any]) -> dict[str, Any]:
    """``{"at": [page fields], "key": keyword}`` for a problem: ``at`` holds ``metadata.version``,
    ``service.read_timeout``, ``params.0.properties.1`` (a row; two for two rows of one name), or
    nothing (said above the tables); ``key`` is the keyword of a row it is about (``maximum``)."""
    field, message = problem.where.field, problem.message
    if field in ("spec", "metadata", ""):
        for words, target in _SPEC_WORDS:
            if message.startswith(words):
                return {"at": [target], "key": None}
        return {"at": [], "key": None}
    if field.startswith("metadata."):
        return {"at": [field], "key": None}
    if field == f"{_PARAMS}.additionalProperties":
        return {"at": ["paramsOpen"], "key": None}
    for prefix, table in _TABLES.items():
        if field.startswith(prefix):
            rows = [r for r in design.get(table) or [] if isinstance(r, dict)]
            found, tail = _row(rows, field[len(prefix) :], table)
            key = tail.split(".")[-1] if tail and not tail.startswith("required") else None
            if key is None or key == "items":
                match = _KEYWORD.match(message)
                key = match.group(1) if match else None
            return {"at": found, "key": key}
    part = field.removeprefix("spec.").split(".")[0].split("[")[0]
    if field.startswith("spec.") and part not in ("request", "response"):
        return {"at": [f"service.{part}"], "key": None}
    return {"at": [], "key": None}


def _problem(p: ApiProblem, design: dict[str, Any]) -> dict[str, Any]:
    at = locate(p, design)
    return {"text": str(p), "message": p.message, "field": p.where.field, "line": p.where.line, **at}


def _examples(compiled: Compiled) -> dict[str, Any]:
    svc = load_service_schema(compiled.doc)
    once = example_request(svc)
    out: dict[str, Any] = {}
    if "once" in svc.modes:
        out["once"] = once
    if "session" in svc.modes:
        # A session's first frame: the same body with status 0 (first) instead of 3 (once).
        first = copy.deepcopy(once)
        first["header"]["status"] = 0
        for item in (first.get("payload") or {}).values():
            if isinstance(item, dict) and "status" in item:
                item["status"] = 0
        out["session"] = first
    return out


def _check(text: str, design: dict[str, Any], file: str) -> tuple[Compiled | None, dict[str, Any]]:
    result: dict[str, Any] = {"yaml": text, "problems": [], "warnings": [], "schema": None, "examples": {}}
    try:
        compiled = from_yaml_text(text, file)
    except ApiDefinitionError as exc:
        result["problems"] = [_problem(p, design) for p in exc.problems]
        return None, result
    spec = compiled.spec
    result.update(
        warnings=[_problem(w, design) for w in compiled.warnings],
        schema=compiled.doc,
        schemaText=compiled.content().decode(),
        fileName=spec.file_name,
        itemName=spec.item_name,
        serviceId=spec.service_id,
        examples=_examples(compiled),
    )
    return compiled, result


def check_text(text: str, design: dict[str, Any], file: str = FILE) -> dict[str, Any]:
    """Compile ApiSchema ``text`` as ``asectl api create`` does; ``design`` (what the page shows
    of it) places each problem. ``schema`` and ``examples`` are null while there are problems."""
    return _check(text, design, file)[1]


def check_design(design: dict[str, Any]) -> dict[str, Any]:
    """:func:`check_text` of the design's YAML (what Save would write)."""
    return check_text(design_yaml(design), design)


def compile_design(design: dict[str, Any]) -> tuple[Compiled | None, dict[str, Any]]:
    """The service schema of ``design`` (None while it has problems) and :func:`check_design`'s result."""
    return _check(design_yaml(design), design, FILE)
