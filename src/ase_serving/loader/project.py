"""A wrapper project folder -> loader settings (``ase.toml`` is optional; defaults for the rest)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from ase_serving.loader.settings import LoaderSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RESULTS = ("sync", "async", "auto")


class ProjectError(Exception):
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

    name = service or svc.get("name") or root.name
    if not isinstance(name, str) or not _NAME.match(name):
        raise ProjectError(
            f"service name {name!r} is not valid: use letters, digits, '-', '_' or '.' "
            "([service] name in ase.toml, or --service)"
        )
    ver = str(version or svc.get("version") or "1.0.0")
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
        session_results=results,
        wrapper_config=_wrapper_config(wrp),
    )
    if metrics_port is not None:
        settings.metrics_port = metrics_port
    elif "metrics_port" in ldr:
        # -1 turns the HTTP endpoint off, as --metrics-port -1 does.
        value = int(_number(ldr, "metrics_port", 0, toml_path, -1))
        settings.metrics_port = None if value < 0 else value
    return settings
