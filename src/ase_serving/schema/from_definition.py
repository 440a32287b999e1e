"""The two ways in, one format out: ApiSchema YAML or the ``Api`` class -> service schema JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ase_serving.schema.code_api import spec_from_file
from ase_serving.schema.service import check_service_schema
from ase_serving.schema.spec import ApiDefinitionError, ApiProblem, ApiSpec
from ase_serving.schema.spec_to_schema import build_service_schema
from ase_serving.schema.yaml_api import read_api_text, read_api_yaml

__all__ = ["Compiled", "from_code", "from_yaml", "from_yaml_text", "schema_bytes"]


def schema_bytes(doc: dict[str, Any]) -> bytes:
    """A service schema as it is written to a file and pushed: indented JSON, a final newline."""
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


@dataclass
class Compiled:
    """A service schema made from an API definition, with the warnings reading it gave."""

    doc: dict[str, Any]
    spec: ApiSpec
    warnings: list[ApiProblem] = field(default_factory=list)

    @property
    def item_name(self) -> str:
        return self.spec.item_name

    def content(self) -> bytes:
        return schema_bytes(self.doc)


def _compiled(spec: ApiSpec, warnings: list[ApiProblem]) -> Compiled:
    doc = build_service_schema(spec)
    # What we build must be what we accept; a failure here is a bug of ours, not the user's.
    problems = check_service_schema(doc)
    assert not problems, problems
    return Compiled(doc, spec, warnings)


def from_yaml(path: str | Path, *, service: str | None = None, version: str | None = None) -> Compiled:
    """``ai_api.yml`` -> service schema; :class:`~.spec.ApiDefinitionError` lists every problem."""
    read = read_api_yaml(path, service=service, version=version)
    return _compiled(read.spec, read.warnings)


def from_yaml_text(text: str, file: str = "ai_api.yml") -> Compiled:
    """:func:`from_yaml` of text in hand (the API design page's): the same reader, the same checks."""
    read = read_api_text(text, file)
    return _compiled(read.spec, read.warnings)


def from_code(path: str | Path, service: str, version: str) -> Compiled:
    """The ``Api(BaseASEApi)`` class of a wrapper.py -> service schema."""
    try:
        return _compiled(spec_from_file(path, service, version), [])
    except ApiDefinitionError as exc:
        # Name the file as the caller gave it, not by the absolute path Python imported it from.
        full = str(Path(path).resolve())
        raise ApiDefinitionError(
            [
                ApiProblem(dataclasses.replace(p.where, file=str(path)), p.message)
                if p.where.file == full
                else p
                for p in exc.problems
            ]
        ) from None
