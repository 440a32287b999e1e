"""A server's flags, defined once on its settings dataclass, each also an environment variable.

A field made with :func:`flag` is a flag: ``max_body = flag(16 * MIB, "largest once body, bytes")``
on :class:`~ase_serving.gateway.settings.GatewaySettings` is ``--max-body`` of ``python -m
ase_serving.gateway`` (:func:`parser`) and of ``asectl gateway serve`` (built from the same
fields in :mod:`ase_serving.cli.server_command`), and ``ASE_GATEWAY_MAX_BODY`` (:func:`apply_env`).
The field's type makes the flag's: ``bool`` an on/off flag, ``list[str]`` a repeatable one,
``Path`` a path. A flag may instead be the positional argument (``argument=True``), have a lowest
value (``min``) or a variable of its own (``env``, for a command whose other flags have none:
``asectl loader run``'s options are :class:`~ase_serving.cli.loader_serve.RunOptions`'s fields).

A variable sets the flag's default, so a flag given on the command line still wins. A repeatable
flag takes a comma-separated list; an on/off flag takes 1/0, true/false, yes/no.

Stdlib only: the servers' ``python -m`` entry points import this, and start in milliseconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Flag:
    """How a settings field shows on a command line."""

    help: str
    #: The long option; default: ``--`` and the field's name with dashes.
    option: str = ""
    #: The only values taken (an argparse/Typer choice).
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    #: The command line's default is None, not the field's (the value then comes from elsewhere,
    #: e.g. the cluster settings); the help says where.
    unset: bool = False
    #: The variable of this flag alone (read by the command line tool: Typer's ``envvar``), where
    #: the command has no prefix for all of its flags.
    env: str = ""
    #: The lowest value taken (a number flag).
    min: float | None = None
    #: The positional argument (at most one, optional: the field's default), not an option.
    argument: bool = False


def flag(
    default: Any,
    help: str,
    *,
    option: str = "",
    choices: tuple[str, ...] = (),
    metavar: str | None = None,
    unset: bool = False,
    env: str = "",
    min: float | None = None,
    argument: bool = False,
) -> Any:
    """A dataclass field that is also a flag (a list default is copied per instance)."""
    meta = {"flag": Flag(help, option, choices, metavar, unset, env, min, argument)}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class FlagField:
    """One flag of a settings class: the field's name, its option, type and default."""

    name: str
    #: The long option (``--data-port``); the field's name for the positional argument.
    option: str
    #: ``bool``, ``int``, ``float``, ``str``, ``Path`` or ``list`` (of str); None allowed when
    #: ``optional``.
    kind: type
    optional: bool
    #: The command line's default (None for an ``unset`` flag).
    default: Any
    spec: Flag


def flags_of(cls: type) -> list[FlagField]:
    """The flags of a settings dataclass, in field order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("flag")
        if spec is None:
            continue
        kind, optional = _kind(hints[f.name])
        if f.default is not dataclasses.MISSING:
            default = f.default
        else:
            assert f.default_factory is not dataclasses.MISSING
            default = f.default_factory()
        option = f.name if spec.argument else spec.option or "--" + f.name.replace("_", "-")
        out.append(FlagField(f.name, option, kind, optional, None if spec.unset else default, spec))
    return out


def _kind(hint: Any) -> tuple[type, bool]:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is list:
        return list, False
    if args and len(args) < len(typing.get_args(hint)):  # X | None
        return args[0], True
    return hint, False


def parser(cls: type, prog: str, description: str, prefix: str | None) -> argparse.ArgumentParser:
    """An argparse parser of ``cls``'s flags (each also ``PREFIX_FLAG``, or its own ``env``;
    :func:`apply_env`; with no ``prefix``, only a flag's own ``env``)."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    own = {}
    for f in flags_of(cls):
        text = f.spec.help + _default_note(f)
        common: dict[str, Any] = {"help": text}
        if f.spec.metavar:
            common["metavar"] = f.spec.metavar
        if f.spec.env:
            own[f.option] = f.spec.env
        if f.spec.argument:
            ap.add_argument(f.name, nargs="?", type=_typed(f), default=f.default, **common)
        elif f.kind is bool:
            ap.add_argument(f.option, dest=f.name, action="store_true", **common)
        elif f.kind is list:
            ap.add_argument(f.option, dest=f.name, action="append", default=[], **common)
        else:
            choices = f.spec.choices or None
            ap.add_argument(
                f.option, dest=f.name, type=_typed(f), default=f.default, choices=choices, **common
            )
    apply_env(ap, prefix, names=own)
    return ap


def _typed(f: FlagField) -> Callable[[str], Any]:
    """The argparse type of ``f``: its kind, at least its ``min``."""
    low = f.spec.min
    if low is None:
        return f.kind

    def at_least(raw: str) -> Any:
        value = f.kind(raw)
        if value < low:
            raise argparse.ArgumentTypeError(f"{raw} is below {low:g}, the least {f.option} takes")
        return value

    at_least.__name__ = f.kind.__name__  # argparse's "invalid float value" for a non-number
    return at_least


def _default_note(f: FlagField) -> str:
    if f.default is None or f.kind in (bool, list):
        return ""
    return f" (default {f.default:g})" if isinstance(f.default, float) else f" (default {f.default})"


def values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The flags' values of a parsed command line, by field name."""
    return {f.name: getattr(args, f.name) for f in flags_of(cls)}


def argv(fields: list[FlagField], given: Mapping[str, Any]) -> list[str]:
    """The command line that gives ``given`` (field name -> value) to a :func:`parser` of these
    flags: what ``asectl gateway serve`` passes on to ``python -m ase_serving.gateway``."""
    out: list[str] = []
    positional: list[str] = []
    for f in fields:
        if f.name not in given:
            continue
        value = given[f.name]
        if f.spec.argument:
            positional += [] if value is None else ["--", str(value)]
        elif f.kind is bool:
            out += [f.option] if value else []
        elif f.kind is list:
            out += [f"{f.option}={v}" for v in value]
        elif value is not None:
            out.append(f"{f.option}={value}")
    return out + positional


def env_name(prefix: str, flag: str) -> str:
    """``ASE_GATEWAY`` and ``--max-body`` -> ``ASE_GATEWAY_MAX_BODY``."""
    return f"{prefix}_{flag.lstrip('-').replace('-', '_').upper()}"


def apply_env(
    ap: argparse.ArgumentParser,
    prefix: str | None,
    environ: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> None:
    """Set the defaults of ``ap``'s flags from ``PREFIX_FLAG`` variables (or a flag's own, in
    ``names``: option -> variable); a bad value is a usage error naming the variable."""
    env = os.environ if environ is None else environ
    own = names or {}
    for action in ap._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or isinstance(action, argparse._HelpAction):
            continue
        name = own.get(longs[0]) or (env_name(prefix, longs[0]) if prefix else None)
        if name is None:
            continue
        raw = env.get(name)
        if raw is None:
            action.help = f"{action.help or ''} [env {name}]"
            continue
        if isinstance(action, argparse._StoreTrueAction):
            if raw.strip().lower() not in _TRUE | _FALSE:
                ap.error(f"{name}={raw!r}: use 1 or 0 (true, false)")
            action.default = raw.strip().lower() in _TRUE
        elif isinstance(action, argparse._AppendAction):
            action.default = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            try:
                action.default = action.type(raw) if callable(action.type) else raw
            except (TypeError, ValueError, argparse.ArgumentTypeError):
                ap.error(f"{name}={raw!r} is not a valid value for {longs[0]}")
            if action.choices is not None and action.default not in action.choices:
                ap.error(f"{name}={raw!r}: choose from {', '.join(map(str, action.choices))}")
        action.help = f"{action.help or ''} [env {name}]"
