"""Typer commands built from a settings dataclass: ``asectl gateway serve``, ``asectl lb serve``,
``asectl config serve`` (:func:`server_command`) and ``asectl loader run`` (:func:`options_command`).

The flags are defined once, on the dataclass's fields (:mod:`ase_serving.envflags`); for a server,
the same fields make the argparse parser of its ``python -m`` entry point. The command checks the
flags (``--help``, types, choices, a lowest value), then a server's becomes ``python -m MODULE``
with the flags that were given (:mod:`.become`): the server never carries the command line tool,
and its ``ASE_*`` variables are read there, by the same code as for ``python -m``.
"""

from __future__ import annotations

import inspect
import subprocess
from collections.abc import Callable
from typing import Annotated, Any, Optional, TypeVar

import typer

from ase_serving.cli.become import become, module_argv
from ase_serving.envflags import FlagField, argv, env_name, flags_of

T = TypeVar("T")


def server_command(
    app: typer.Typer, name: str, settings: type, module: str, prefix: str, help: str, epilog: str
) -> None:
    """Register ``name`` on ``app``: one option per flag of ``settings``, serving ``python -m module``."""
    fields = flags_of(settings)

    def command(ctx: typer.Context, **given: Any) -> None:
        # Only what was given: a flag not given leaves its ASE_* variable to decide, in the server.
        chosen = {k: v for k, v in given.items() if _given(ctx.get_parameter_source(k))}
        args = argv(fields, chosen)
        become(module, args)
        raise typer.Exit(subprocess.call(module_argv(module, args)))  # where exec is not available

    ctx_param = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
    _register(app, name, [ctx_param, *(_parameter(f, prefix) for f in fields)], command, help, epilog)


def options_command(
    app: typer.Typer, name: str, options: type[T], run: Callable[[T], None], help: str, epilog: str
) -> None:
    """Register ``name`` on ``app``: an argument or option per flag of ``options`` (each flag's own
    variable, if any, the only one read), calling ``run(options(**values))``."""

    def command(**given: Any) -> None:
        run(options(**given))

    _register(app, name, [_parameter(f, None) for f in flags_of(options)], command, help, epilog)


def _register(
    app: typer.Typer,
    name: str,
    params: list[inspect.Parameter],
    command: Callable[..., None],
    help: str,
    epilog: str,
) -> None:
    """Give ``command`` the signature Typer reads its parameters from, and register it."""
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = help
    app.command(name, epilog=epilog)(command)


def _given(source: Any) -> bool:
    return source is not None and source.name != "DEFAULT"


def _parameter(f: FlagField, prefix: str | None) -> inspect.Parameter:
    """The Typer parameter of ``f``; with a ``prefix``, its help names its ``PREFIX_FLAG`` variable
    (read by the server, not here)."""
    help = f.spec.help
    if any(c not in help for c in f.spec.choices):
        help += f": {', '.join(f.spec.choices)}"
    if prefix is not None and not f.spec.argument and not f.spec.env:
        help += f" (env {env_name(prefix, f.option)})"  # not [env ...]: Rich would take it for markup
    kind: Any = f.kind
    default: Any = f.default
    if f.kind is bool:
        kind = bool
    elif f.kind is list:
        kind, default = Optional[list[str]], None  # noqa: UP045 (a value Typer reads, not a hint)
    elif f.optional or default is None:
        kind = Optional[f.kind]  # noqa: UP045
    callback = _one_of(f.option, f.spec.choices) if f.spec.choices else None
    info: Any
    if f.spec.argument:
        info = typer.Argument(help=help, metavar=f.spec.metavar, callback=callback)
    else:
        info = typer.Option(
            f.option,
            help=help,
            metavar=f.spec.metavar,
            callback=callback,
            envvar=f.spec.env or None,
            min=f.spec.min,
        )
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info]
    )


def _one_of(option: str, choices: tuple[str, ...]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check
