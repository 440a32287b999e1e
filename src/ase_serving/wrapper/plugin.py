"""Load ``wrapper.py`` and check it against the contract (README, "The wrapper contract"),
reporting every problem at once."""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ase_serving.errors import UserError

ONCE = "once"
SESSION = "session"

#: Function name -> the arguments the loader passes, in order.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "wrapperInit": ("config",),
    "wrapperFini": (),
    "wrapperOnceExec": ("usrTag", "params", "reqData", "respData", "psrIds", "psrCnt"),
    "wrapperCreate": ("usrTag", "params", "psrIds", "psrCnt"),
    "wrapperWrite": ("handle", "datas"),
    "wrapperRead": ("handle",),
    "wrapperDestroy": ("handle",),
    "wrapperError": ("ret",),
}
REQUIRED = ("wrapperInit",)
MODE_FUNCS: dict[str, tuple[str, ...]] = {
    ONCE: ("wrapperOnceExec",),
    SESSION: ("wrapperCreate", "wrapperWrite", "wrapperRead", "wrapperDestroy"),
}

_counter = itertools.count()


class PluginError(UserError):
    """``wrapper.py`` cannot be used; ``problems`` lists every reason, one line each."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


@dataclass
class Plugin:
    """A loaded wrapper: its functions by name and the modes (once/session) it can serve."""

    path: Path
    module: ModuleType
    funcs: dict[str, Callable[..., Any]]
    modes: frozenset[str] = field(default_factory=frozenset)

    def has(self, name: str) -> bool:
        return name in self.funcs


def resolve_path(path: str | Path) -> Path:
    """A project folder or a wrapper file -> the wrapper file."""
    p = Path(path)
    return p / "wrapper.py" if p.is_dir() else p


def import_module(path: Path) -> ModuleType:
    """Import a wrapper file under a fresh module name (its folder on sys.path); PluginError if it fails."""
    name = f"ase_wrapper_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(path, [f"cannot import {path}"])
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent.resolve())
    # A wrapper may import modules that sit next to it, as it would when run as a script.
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        tb = traceback.extract_tb(exc.__traceback__)
        frames = [f for f in tb if f.filename == str(path)]
        where = f" (line {frames[-1].lineno})" if frames else ""
        raise PluginError(
            path, [f"importing wrapper.py failed{where}: {type(exc).__name__}: {exc}"]
        ) from None
    return module


def _arity_problem(name: str, func: Callable[..., Any]) -> str | None:
    args = SIGNATURES[name]
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None  # a builtin or C function: cannot check, trust it
    try:
        sig.bind(*([None] * len(args)))
    except TypeError:
        return (
            f"{name}{sig} cannot be called as {name}({', '.join(args)}): "
            f"it must take {len(args)} argument{'s' if len(args) != 1 else ''}"
        )
    return None


def check_functions(
    target: Any, modes: Iterable[str] | None = None
) -> tuple[dict[str, Callable[..., Any]], frozenset[str], list[str]]:
    """Functions found on ``target``, the modes they make complete, and every problem."""
    problems: list[str] = []
    funcs: dict[str, Callable[..., Any]] = {}
    for name in SIGNATURES:
        func = getattr(target, name, None)
        if func is None:
            continue
        if not callable(func):
            problems.append(f"{name} is a {type(func).__name__}, not a function")
            continue
        funcs[name] = func
        problem = _arity_problem(name, func)
        if problem:
            problems.append(problem)
    for name in REQUIRED:
        if name not in funcs:
            problems.append(f"{name} is missing (every wrapper needs it)")
    complete = frozenset(m for m, names in MODE_FUNCS.items() if all(n in funcs for n in names))
    wanted = set(modes) if modes is not None else set()
    for mode in sorted(wanted):
        if mode not in MODE_FUNCS:
            problems.append(f"unknown mode {mode!r} (use once or session)")
            continue
        missing = [n for n in MODE_FUNCS[mode] if n not in funcs]
        if missing:
            problems.append(f"{mode} mode needs {', '.join(missing)} (missing)")
    if not wanted:
        partial = [
            (mode, [n for n in names if n not in funcs])
            for mode, names in MODE_FUNCS.items()
            if mode not in complete and any(n in funcs for n in names)
        ]
        for mode, missing in partial:
            problems.append(f"{mode} mode needs {', '.join(missing)} (missing)")
        if not complete and not partial:
            problems.append(
                "no mode is served: define wrapperOnceExec (once requests) or "
                "wrapperCreate, wrapperWrite, wrapperRead and wrapperDestroy (sessions)"
            )
    return funcs, complete, problems


def load_plugin(path: str | Path, modes: Iterable[str] | None = None) -> Plugin:
    """Import ``wrapper.py`` (a file or its project folder) and check it.

    Module-level functions or a ``Wrapper`` class with the same names as methods are accepted.
    ``modes`` (``once``/``session``) are the modes the service must offer; without it, each mode
    whose functions are partly defined must be complete and at least one must be.
    Raises :class:`PluginError` listing all problems.
    """
    file = resolve_path(path)
    if not file.is_file():
        raise PluginError(file, [f"{file} not found: a wrapper project needs a wrapper.py"])
    module = import_module(file)
    target: Any = module
    cls = getattr(module, "Wrapper", None)
    if inspect.isclass(cls):
        try:
            target = cls()
        except Exception as exc:
            raise PluginError(file, [f"creating Wrapper() failed: {type(exc).__name__}: {exc}"]) from None
    funcs, complete, problems = check_functions(target, modes)
    if problems:
        raise PluginError(file, problems)
    return Plugin(path=file, module=module, funcs=funcs, modes=complete)
