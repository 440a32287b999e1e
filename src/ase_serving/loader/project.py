"""A wrapper project folder -> loader settings (``ase.toml`` is optional; defaults for the rest).

Where the service name and version come from, first match wins: the flags (``--service``,
``--version``), ``ase.toml`` ``[service] name/version``, ``ai_api.yml`` ``metadata.serviceName/version``
(the seed's ApiSchema YAML), then the folder's name and ``1.0.0``. So a folder holding only
``wrapper.py`` and ``ai_api.yml`` is a complete project. When both files name the service (or
its version), they must agree: a mismatch is refused, naming both values and the file to change.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

from ase_serving.errors import UserError
from ase_serving.loader.settings import LoaderSettings
from ase_serving.store.base import NAME_RE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RESULTS = ("sync", "async", "auto")
#: The ApiSchema file of a project (``ai_api.yaml`` is accepted too).
API_YAML = ("ai_api.yml", "ai_api.yaml")


class ProjectError(UserError):
    """The project folder or its ase.toml is unusable; the message says where and what to do."""


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            doc: dict[str, Any] = tomllib.load(fh)
    except OSError as exc:
        raise ProjectError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"{path}: invalid TOML: {exc}") from None
    return doc


def find_api_yaml(root: Path) -> Path | None:
    """The project's ApiSchema file (``ai_api.yml``, else ``ai_api.yaml``), if it has one."""
    return next((root / n for n in API_YAML if (root / n).is_file()), None)


def read_api_metadata(root: Path) -> dict[str, Any]:
    """``metadata`` of the project's ai_api.yml (``{}`` when there is none).

    Only the metadata is read here; the schema converter reads the ``spec``."""
    path = find_api_yaml(root)
    if path is None:
        return {}
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProjectError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ProjectError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProjectError(f"{where}: invalid YAML: {problem}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ProjectError(f"{path}: must be an ApiSchema mapping (apiVersion, kind, metadata, spec)")
    kind = doc.get("kind")
    if kind is not None and kind != "ApiSchema":
        raise ProjectError(f"{path}: kind must be ApiSchema, not {kind!r}")
    meta = doc.get("metadata", {})
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ProjectError(f"{path}: metadata must be a mapping (serviceName, version, ...)")
    return meta


def _same_names(svc: dict[str, Any], meta: dict[str, Any], toml_path: Path, yml: Path | None) -> None:
    """Refuse an ase.toml and an ai_api.yml that name the service (or its version) differently.

    Either alone names it; when both do, they must agree: otherwise ase.toml's name would win
    silently and the route (/v1/private/<name>) would not be the one ai_api.yml describes."""
    if yml is None:
        return
    for key, meta_key in (("name", "serviceName"), ("version", "version")):
        ours, theirs = svc.get(key), meta.get(meta_key)
        if ours is None or theirs is None or str(ours) == str(theirs):
            continue
        raise ProjectError(
            f"{toml_path.name} and {yml.name} disagree: [service] {key} is {str(ours)!r} in {toml_path} "
            f'but metadata.{meta_key} is {str(theirs)!r} in {yml}; set {key} = "{theirs}" in ase.toml '
            f"(or delete it there: {yml.name}'s then counts)"
        )


def _table(doc: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ProjectError(f"{path}: [{name}] must be a table")
    return value


def _number(table: dict[str, Any], key: str, default: float, path: Path, minimum: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ProjectError(f"{path}: [loader] {key} must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def _wrapper_config(table: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def load_project(
    folder: str | Path,
    *,
    service: str | None = None,
    version: str | None = None,
    workers: int | None = None,
    lic: int | None = None,
    host: str | None = None,
    port: int | None = None,
    metrics_port: int | None = None,
) -> LoaderSettings:
    """Read ``folder`` (wrapper.py, optional ase.toml); flags given here win over the file."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ProjectError(f"{root}: no such folder (give the folder that holds wrapper.py)")
    if not (root / "wrapper.py").is_file():
        raise ProjectError(f"{root}: no wrapper.py here (create one with `asectl loader new NAME`)")
    toml_path = root / "ase.toml"
    doc = read_toml(toml_path) if toml_path.is_file() else {}
    svc = _table(doc, "service", toml_path)
    ldr = _table(doc, "loader", toml_path)
    wrp = _table(doc, "wrapper", toml_path)

    meta = read_api_metadata(root)
    _same_names(svc, meta, toml_path, find_api_yaml(root))

    name = service or svc.get("name") or meta.get("serviceName") or root.name
    if not isinstance(name, str) or not _NAME.match(name):
        raise ProjectError(
            f"service name {name!r} is not valid: use letters, digits, '-', '_' or '.' "
            "([service] name in ase.toml, metadata.serviceName in ai_api.yml, or --service)"
        )
    ver = str(version or svc.get("version") or meta.get("version") or "1.0.0")
    if not NAME_RE.match(ver):
        raise ProjectError(
            f"service version {ver!r} is not valid: use letters, digits, '.', '_', '-', ':' or '@' "
            "([service] version in ase.toml, metadata.version in ai_api.yml, or --version)"
        )
    modes_raw = svc.get("modes", [])
    if isinstance(modes_raw, str):
        modes_raw = [modes_raw]
    if not isinstance(modes_raw, list) or any(m not in ("once", "session") for m in modes_raw):
        raise ProjectError(f"{toml_path}: [service] modes must be a list of 'once' and 'session'")
    results = ldr.get("session_results", "auto")
    if results not in _RESULTS:
        raise ProjectError(f"{toml_path}: [loader] session_results must be one of {', '.join(_RESULTS)}")

    n_workers = workers if workers is not None else int(_number(ldr, "workers", 1, toml_path, 1))
    n_lic = lic if lic is not None else int(_number(ldr, "lic", 1, toml_path, 1))
    if n_workers < 1 or n_lic < 1:
        raise ProjectError("--workers and --lic must be at least 1")
    lic_best: int | None = None
    if "lic_best" in ldr:
        # The loader's preferred concurrency in all (not per worker); the LB fills up to it first.
        lic_best = min(int(_number(ldr, "lic_best", 1, toml_path, 1)), n_workers * n_lic)
    direct = ldr.get("direct", True)
    if not isinstance(direct, bool):
        raise ProjectError(f"{toml_path}: [loader] direct must be true or false, got {direct!r}")
    the_port = port if port is not None else int(_number(ldr, "port", 0, toml_path, 0))
    settings = LoaderSettings(
        project_dir=root,
        service=name,
        version=ver,
        modes=frozenset(modes_raw),
        workers=n_workers,
        lic=n_lic,
        host=host or str(ldr.get("host", "127.0.0.1")),
        port=the_port,
        once_timeout_s=_number(ldr, "once_timeout", 30, toml_path, 0.001),
        read_timeout_s=_number(ldr, "read_timeout", 15, toml_path, 0.001),
        session_timeout_s=_number(ldr, "session_timeout", 180, toml_path, 0.001),
        drain_timeout_s=_number(ldr, "drain_timeout", 30, toml_path, 0),
        lic_best=lic_best,
        session_results=results,
        wrapper_config=_wrapper_config(wrp),
        direct=direct,
    )
    if metrics_port is not None:
        settings.metrics_port = metrics_port
    elif "metrics_port" in ldr:
        # -1 turns the HTTP endpoint off, as --metrics-port -1 does.
        value = int(_number(ldr, "metrics_port", 0, toml_path, -1))
        settings.metrics_port = None if value < 0 else value
    return settings
