"""The service schemas and routes a wrapper project brings, read from its folder.

:func:`project_schemas` lists what the project holds (the schema made from ``ai_api.yml`` or
wrapper.py's ``Api`` class, ``schemas/*.json`` and ``service.json``); the
:class:`~ase_serving.loader.registrar.ClusterRegistrar` writes every item whose (service, version,
name) the config store lacks, never overwriting one. :func:`project_routes` gives the routes the
schema asks for (``asectl loader serve`` prints them).
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from pathlib import Path

import orjson

from ase_serving.loader.project import find_api_yaml
from ase_serving.loader.settings import LoaderSettings
from ase_serving.schema import ApiDefinitionError, from_yaml
from ase_serving.schema.code_api import has_api_class
from ase_serving.schema.compile import schema_bytes
from ase_serving.schema.service import default_route, is_service_schema, parse_json, schema_routes
from ase_serving.store.base import NAME_RE

# The registrar's logger: these warnings are part of its schema push and keep the name they had.
log = logging.getLogger("ase_serving.loader.registrar")
#: Seconds `python -m ase_serving.schema` may take to import wrapper.py and build its Api's schema.
_GEN_TIMEOUT = 120


def _defined_schemas(settings: LoaderSettings) -> list[tuple[str, bytes]]:
    """The schemas the project's API definition makes: ai_api.yml, then wrapper.py's Api class.

    The loader's service name and version win over the definition's (they are what it
    registers under). The Api class is read in a child process, so that importing wrapper.py
    (and the engine it loads) happens in the workers only."""
    root = Path(settings.project_dir)
    out: list[tuple[str, bytes]] = []
    yml = find_api_yaml(root)
    if yml is not None:
        try:
            compiled = from_yaml(yml, service=settings.service, version=settings.version)
            out.append((compiled.item_name, compiled.content()))
        except ApiDefinitionError as exc:
            log.warning("schema %s skipped: %s", yml, str(exc).replace("\n", "; "))
    wrapper = root / "wrapper.py"
    if has_api_class(wrapper):
        cmd = [sys.executable, "-m", "ase_serving.schema", str(wrapper), settings.service, settings.version]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=_GEN_TIMEOUT, cwd=root, check=False)
        except subprocess.TimeoutExpired:
            log.warning("schema of %s's Api class skipped: no answer within %d s", wrapper, _GEN_TIMEOUT)
            return out
        if done.returncode == 0:
            doc = orjson.loads(done.stdout)
            out.append((doc["name"], schema_bytes(doc["schema"])))
        else:
            why = done.stderr.decode(errors="replace").strip().replace("\n", "; ")
            log.warning("schema of %s's Api class skipped: %s", wrapper, why)
    return out


def project_schemas(settings: LoaderSettings) -> list[tuple[str, bytes]]:
    """The service schemas a project brings, as (config item name, content), sorted by name.

    The API definition (``ai_api.yml``, the ``Api`` class in wrapper.py) first, then
    ``schemas/*.json`` (named by their file name) and ``service.json``; for one name the first
    wins. Files that are not JSON objects or whose name cannot be a config item name, and
    definitions with problems, are skipped with a warning.
    """
    root = Path(settings.project_dir)
    found: dict[str, bytes] = {}
    for name, content in _defined_schemas(settings):
        found.setdefault(name, content)
    files = sorted((root / "schemas").glob("*.json")) if (root / "schemas").is_dir() else []
    if (root / "service.json").is_file():
        files.append(root / "service.json")
    for path in files:
        if not NAME_RE.match(path.name):
            log.warning("schema %s skipped: %r cannot be a config item name", path, path.name)
            continue
        try:
            content = path.read_bytes()
            if not isinstance(orjson.loads(content), dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            log.warning("schema %s skipped: %s", path, exc)
            continue
        found.setdefault(path.name, content)
    return sorted(found.items())


def project_routes(settings: LoaderSettings) -> list[str]:
    """The routes the project's service schema asks for (from ai_api.yml or schemas/*.json; the
    Api class is not imported here), else the default route of the service."""
    root = Path(settings.project_dir)
    yml = find_api_yaml(root)
    candidates: list[bytes] = []
    if yml is not None:
        with contextlib.suppress(ApiDefinitionError, OSError):
            candidates.append(from_yaml(yml, service=settings.service, version=settings.version).content())
    folder = root / "schemas"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            candidates.append(path.read_bytes())
    for content in candidates:
        doc, problem = parse_json(content)
        meta = doc.get("meta") if problem is None and is_service_schema(doc) else None
        if isinstance(meta, dict) and meta.get("serviceId") == settings.service:
            return schema_routes(doc)
    return [default_route(settings.service)]
