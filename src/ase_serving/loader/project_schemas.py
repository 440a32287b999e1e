"""The service schemas and routes a wrapper project brings, read from its folder.

:func:`read_project_api` reads what the project holds (the schema made from ``ai_api.yml`` or
wrapper.py's ``Api`` class, ``schemas/*.json`` and ``service.json``) with every problem of its API
definition, worded as ``asectl api create``/``api gen`` word them (``ai_api.yml:14: spec...:
minimum 11 > maximum 10``): ``asectl loader test`` lists them, ``asectl loader run`` refuses to
start with them. The :class:`~ase_serving.loader.registrar.ClusterRegistrar` writes the items the
config store lacks (and, with ``--push-schema``, replaces the ones that differ).
:func:`project_routes` gives the routes the schema asks for.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ase_serving.loader.project import find_api_yaml
from ase_serving.loader.settings import LoaderSettings
from ase_serving.schema import ApiDefinitionError, ServiceSchema, from_yaml, load_service_schema
from ase_serving.schema.code_api import has_api_class
from ase_serving.schema.from_definition import schema_bytes
from ase_serving.schema.service import (
    ServiceSchemaError,
    check_service_schema,
    default_route,
    is_service_schema,
    parse_json,
)
from ase_serving.store.base import NAME_RE

# The registrar's logger: these warnings are part of its schema push and keep the name they had.
log = logging.getLogger("ase_serving.loader.registrar")

__all__ = [
    "ProjectApi",
    "no_schema_line",
    "project_routes",
    "project_schemas",
    "read_project_api",
    "same_schema",
    "shown",
]
#: Seconds `python -m ase_serving.schema` may take to import wrapper.py and build its Api's schema.
_GEN_TIMEOUT = 120


def shown(path: Path) -> str:
    """``path`` as a user would type it: relative to the current folder when inside it."""
    try:
        rel = path.resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        return str(path)
    return str(rel) if str(rel) != "." else str(path)


@dataclass
class ProjectApi:
    """What a project's API definition and schema files give."""

    #: Config items to push, (name, content), sorted by name; for one name the definition wins.
    schemas: list[tuple[str, bytes]] = field(default_factory=list)
    #: Every problem of the API definition and the schema files (file:line: field: message).
    problems: list[str] = field(default_factory=list)
    #: Warnings reading the definition gave (aliases, ignored keys).
    warnings: list[str] = field(default_factory=list)
    #: Config item name -> the file it was made from (``hello/ai_api.yml``).
    sources: dict[str, str] = field(default_factory=dict)
    #: The schema of the project's own service (its serviceId is the loader's), if it brings one.
    service: ServiceSchema | None = None
    #: The file the project's own service schema was made from (``hello/ai_api.yml``), or "".
    service_source: str = ""


def _from_yaml(settings: LoaderSettings, yml: Path, out: ProjectApi) -> tuple[str, bytes] | None:
    try:
        compiled = from_yaml(shown(yml), service=settings.service, version=settings.version)
    except ApiDefinitionError as exc:
        out.problems.extend(str(p) for p in exc.problems)
        return None
    out.warnings.extend(str(w) for w in compiled.warnings)
    out.sources[compiled.item_name] = shown(yml)
    return compiled.item_name, compiled.content()


def _from_class(settings: LoaderSettings, wrapper: Path, out: ProjectApi) -> tuple[str, bytes] | None:
    """The schema of wrapper.py's Api class, made in a child process, so that importing wrapper.py
    (and the engine it loads) never happens in this one."""
    name = shown(wrapper)
    full = str(wrapper.resolve())
    cmd = [sys.executable, "-m", "ase_serving.schema", full, settings.service, settings.version]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=_GEN_TIMEOUT, cwd=wrapper.parent, check=False)
    except subprocess.TimeoutExpired:
        out.problems.append(f"{name}: the Api class: no schema within {_GEN_TIMEOUT} s (importing it hangs?)")
        return None
    if done.returncode == 0:
        doc = orjson.loads(done.stdout)
        out.sources[doc["name"]] = f"{name} (Api class)"
        return doc["name"], schema_bytes(doc["schema"])
    lines = done.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {done.returncode}"]
    out.problems.extend(line.replace(full, name) for line in lines if line.strip())
    return None


def _files(root: Path, out: ProjectApi) -> list[tuple[str, bytes]]:
    """``schemas/*.json`` and ``service.json``: what cannot be pushed is a warning; a service schema
    with problems is a problem (the gateway would not serve it)."""
    files = sorted((root / "schemas").glob("*.json")) if (root / "schemas").is_dir() else []
    if (root / "service.json").is_file():
        files.append(root / "service.json")
    found = []
    for path in files:
        if not NAME_RE.match(path.name):
            out.warnings.append(f"{shown(path)}: skipped: {path.name!r} cannot be a config item name")
            continue
        try:
            content = path.read_bytes()
            doc = orjson.loads(content)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            out.warnings.append(f"{shown(path)}: skipped: {exc}")
            continue
        if is_service_schema(doc):
            out.problems.extend(f"{shown(path)}: {p}" for p in check_service_schema(doc))
        found.append((path.name, content))
        out.sources.setdefault(path.name, shown(path))
    return found


def read_project_api(settings: LoaderSettings, *, code: bool = True) -> ProjectApi:
    """The project's schemas and the problems of its API definition.

    The definition (``ai_api.yml``, then the ``Api`` class of wrapper.py unless ``code`` is false)
    comes first, then ``schemas/*.json`` (named by their file name) and ``service.json``; for one
    config item name the first wins. The loader's service name and version win over the
    definition's (they are what it registers under)."""
    root = Path(settings.project_dir)
    out = ProjectApi()
    found: dict[str, bytes] = {}
    made: list[tuple[str, bytes] | None] = []
    yml = find_api_yaml(root)
    if yml is not None:
        made.append(_from_yaml(settings, yml, out))
    wrapper = root / "wrapper.py"
    if code and has_api_class(wrapper):
        made.append(_from_class(settings, wrapper, out))
    for name, content in [m for m in made if m is not None] + _files(root, out):
        found.setdefault(name, content)
    out.schemas = sorted(found.items())
    for name, content in out.schemas:
        loaded = own_service(content, settings.service)
        if loaded is not None:
            out.service, out.service_source = loaded, out.sources.get(name, name)
            break
    return out


def own_service(content: bytes, service: str) -> ServiceSchema | None:
    """``content`` loaded when it is a valid service schema of ``service``, else None."""
    doc, problem = parse_json(content)
    if problem is not None or not is_service_schema(doc):
        return None
    meta = doc.get("meta")
    if not isinstance(meta, dict) or meta.get("serviceId") != service:
        return None
    with contextlib.suppress(ServiceSchemaError, ValueError):
        return load_service_schema(doc)
    return None


def project_schemas(settings: LoaderSettings) -> list[tuple[str, bytes]]:
    """The service schemas a project brings, as (config item name, content), sorted by name.

    Definitions with problems and files that cannot be pushed are skipped with a warning."""
    api = read_project_api(settings)
    for line in api.problems + api.warnings:
        log.warning("schema skipped or not served: %s", line)
    return api.schemas


def project_routes(settings: LoaderSettings) -> list[str]:
    """The routes the project's service schema asks for (from ai_api.yml or schemas/*.json; the
    Api class is not imported here), else the default route of the service."""
    api = read_project_api(settings, code=False)
    if api.service is not None:
        return api.service.routes
    return [default_route(settings.service)]


def no_schema_line(service: str) -> str:
    """What to add when a project brings no API schema (``loader test`` and ``loader run`` say it)."""
    return (
        f"no API schema: the gateway has no route for {service} until the project has an ai_api.yml "
        "(or an Api class in wrapper.py); `asectl loader new NAME` scaffolds one"
    )


def same_schema(a: bytes, b: bytes) -> bool:
    """Whether two config items hold the same JSON (formatting aside), else the same bytes."""
    if a == b:
        return True
    try:
        return bool(orjson.loads(a) == orjson.loads(b))
    except orjson.JSONDecodeError:
        return False
