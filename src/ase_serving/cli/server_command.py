"""``asectl gateway serve``, ``asectl lb serve``, ``asectl config serve``: Typer commands built from
a server's settings.

The flags are defined once, on the server's settings dataclass (:mod:`ase_serving.envflags`); the
same fields make the argparse parser of its ``python -m`` entry point. The command checks the flags
(``--help``, types, choices), then becomes ``python -m MODULE`` with the flags that were given
(:mod:`.become`): the server never carries the command line tool, and its ``ASE_*`` variables
are read there, by the same code as for ``python -m``.
"""

from __future__ import annotations

import inspect
import subprocess
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from ase_serving.cli.become import become, module_argv
from ase_serving.envflags import FlagField, argv, env_name, flags_of


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
    params = [ctx_param, *(_parameter(f, prefix) for f in fields)]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = help
    app.command(name, epilog=epilog)(command)


def _given(source: Any) -> bool:
    return source is not None and source.name != "DEFAULT"


def _parameter(f: FlagField, prefix: str) -> inspect.Parameter:
    help = f.spec.help
    if any(c not in help for c in f.spec.choices):
        help += f": {', '.join(f.spec.choices)}"
    help += f" (env {env_name(prefix, f.option)})"  # not [env ...]: Rich would take it for markup
    kind: Any = f.kind
    default: Any = f.default
    if f.kind is bool:
        kind = bool
    elif f.kind is list:
        kind, default = Optional[list[str]], None  # noqa: UP045 (a value Typer reads, not a hint)
    elif f.optional or default is None:
        kind = Optional[f.kind]  # noqa: UP045
    option = typer.Option(
        f.option,
        help=help,
        metavar=f.spec.metavar,
        callback=_one_of(f.option, f.spec.choices) if f.spec.choices else None,
    )
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option]
    )


def _one_of(option: str, choices: tuple[str, ...]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check
