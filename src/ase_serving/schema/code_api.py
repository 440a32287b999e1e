"""The ``Api(BaseASEApi)`` class of a ``wrapper.py`` -> :class:`~.spec.ApiSpec` (``asectl api gen``).

The wrapper module is imported (as the loader's workers import it), the one ``BaseASEApi``
subclass defined in it is instantiated, and its ``request()``/``response()`` run while the
``Arg``/``Data`` objects they create are collected. Every problem names the argument and the
line it was declared on: ``wrapper.py:70: param1: minimum 11 > maximum 10: ...``.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase_serving.api import _UNSET, Arg, BaseASEApi, Data, collecting
from ase_serving.schema.spec import LIMITS, ApiDefinitionError, ApiProblem, ApiSpec, DataSpec, Param, Where
from ase_serving.wrapper.plugin import PluginError, import_module

__all__ = ["find_api_class", "has_api_class", "spec_from_class", "spec_from_file"]

_PY_TYPES: dict[Any, str] = {
    int: "integer",
    float: "number",
    str: "string",
    bool: "boolean",
    dict: "object",
    list: "array",
}
_TYPE_NAMES = {
    "int": "integer",
    "float": "number",
    "str": "string",
    "bool": "boolean",
    "dict": "object",
    "list": "array",
}


def _type_name(t: Any) -> str:
    if t in _PY_TYPES:
        return _PY_TYPES[t]
    if isinstance(t, str):
        return _TYPE_NAMES.get(t, t)
    return getattr(t, "__name__", repr(t))


def _where(decl: Arg | Data, field: str) -> Where:
    return Where(decl.file, decl.line, field)


def _param(a: Arg, field: str) -> Param:
    t = _type_name(a.type)
    schema: dict[str, Any] = {"type": t}
    if a.description:
        schema["description"] = a.description
    low, high = {"string": ("minLength", "maxLength"), "array": ("minItems", "maxItems")}.get(
        t, ("minimum", "maximum")
    )
    if a.min is not None:
        schema[low] = a.min
    if a.max is not None:
        schema[high] = a.max
    if a.default is not _UNSET:
        schema["default"] = a.default
    for key in ("enum", "format", "pattern"):
        if getattr(a, key) is not None:
            schema[key] = getattr(a, key)
    p = Param(a.name, schema, _where(a, field), a.required)
    p.children = [_param(c, f"{field}.{c.name}") for c in a.properties]
    p.required_where = {c.name: _where(c, f"{field}.{c.name}") for c in a.properties if c.required}
    if a.items is not None:
        p.items = _param(a.items, f"{field}[]")
    return p


def _strings(value: str | Sequence[str] | None) -> list[str]:
    if value is None or value == "":
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _data(d: Data) -> DataSpec:
    return DataSpec(
        d.name,
        str(d.type),
        _where(d, d.name),
        encoding=_strings(d.encoding),
        compress=_strings(d.compress),
        format=_strings(d.format),
        required=d.required,
        description=d.description,
        attrs=dict(d.attrs),
    )


def _output_arg(a: Arg) -> DataSpec:
    """An ``Arg`` in response(): an output holding that value as text (its constraints described)."""
    p = _param(a, a.name)
    return DataSpec(a.name, "text", p.where, description=a.description, attrs={}, value=p)


def _collect(api: BaseASEApi, method: str, file: str) -> tuple[list[Arg | Data], list[ApiProblem]]:
    with collecting() as found:
        try:
            getattr(api, method)()
        except Exception as exc:
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == file]
            line = frames[-1].lineno if frames else None
            return [], [ApiProblem(Where(file, line, f"{type(api).__name__}.{method}()"), f"raised {exc!r}")]
    return list(found), []


def spec_from_class(cls: type[BaseASEApi], service_id: str, version: str) -> ApiSpec:
    """The spec of an Api class (problems of a ``request()``/``response()`` that raises included)."""
    file = inspect.getsourcefile(cls) or "<wrapper>"
    try:
        line = inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        line = None
    spec = ApiSpec(service_id=service_id, version=version, where=Where(file, line, cls.__name__))
    interface = cls.interface
    spec.modes = [interface] if isinstance(interface, str) else list(interface)
    spec.route = _strings(cls.route)
    for key in LIMITS:
        setattr(spec, key, getattr(cls, key))
    spec.client_errors = list(cls.client_errors or ())
    spec.description = cls.description or (inspect.getdoc(cls) or "").split("\n\n")[0]
    spec.name = cls.name or service_id
    spec.params_open = bool(cls.extra_params)
    api = cls()
    request, problems = _collect(api, "request", file)
    response, more = _collect(api, "response", file)
    problems += more
    spec.params = [_param(a, a.name) for a in request if isinstance(a, Arg)]
    spec.inputs = [_data(d) for d in request if isinstance(d, Data)]
    spec.outputs = [_data(d) if isinstance(d, Data) else _output_arg(d) for d in response]
    if problems:
        raise ApiDefinitionError(problems)
    return spec


def find_api_class(module: Any, file: str) -> type[BaseASEApi]:
    """The one ``BaseASEApi`` subclass defined in ``module``."""
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseASEApi)
        and obj is not BaseASEApi
        and obj.__module__ == module.__name__
    ]
    where = Where(file, None, "")
    if not found:
        raise ApiDefinitionError(
            [ApiProblem(where, "no class derived from BaseASEApi (from ase_serving import api as base)")]
        )
    if len(found) > 1:
        names = ", ".join(sorted(c.__name__ for c in found))
        raise ApiDefinitionError([ApiProblem(where, f"several BaseASEApi classes ({names}): keep one")])
    return found[0]


def has_api_class(path: str | Path) -> bool:
    """A cheap look (no import) whether a wrapper file may define an Api class."""
    try:
        return "BaseASEApi" in Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def spec_from_file(path: str | Path, service_id: str, version: str) -> ApiSpec:
    """Import ``path`` (a wrapper.py) and build the spec of its Api class."""
    file = str(Path(path).resolve())
    try:
        module = import_module(Path(file))
    except PluginError as exc:
        raise ApiDefinitionError([ApiProblem(Where(str(path), None, ""), p) for p in exc.problems]) from None
    return spec_from_class(find_api_class(module, file), service_id, version)
