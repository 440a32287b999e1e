"""``asectl``: the command line tool. A thin shell over the domain packages, one module per command group.

A :class:`~ase_serving.errors.UserError` that a command lets through (a config centre that refuses,
a project folder without ase.toml, ...) is printed here, once for every command, as ``error:
<message>`` on stderr with exit status ``exit_code`` (1); a command catches one itself only to say
more, clean up or exit otherwise.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from ase_serving.cli.common import abort
from ase_serving.cli.helptext import prepare
from ase_serving.errors import UserError

#: Command groups and the modules that make them, in the order help lists them.
GROUPS = {
    "loader": "loader",
    "api": "api",
    "config": "config",
    "cluster": "cluster",
    "consumer": "consumer",
    "account": "account",
    "images": "images",
    "gateway": "gateway",
    "lb": "lb",
}
#: Top-level commands and the modules that register them.
COMMANDS = {"setup": "setup", "init": "init", "down": "init", "call": "call"}


def wanted(argv: list[str], names: dict[str, str]) -> str | None:
    """The module of the command that ``argv`` names, or None (help, a typo: then every one).

    Only that module is imported: each costs memory (HTTP and gRPC clients, the schema compiler),
    and ``asectl loader run`` keeps whatever it imported for as long as the loader serves.
    """
    if not argv or argv[0].startswith("-"):
        return None
    return names.get(argv[0])


class _Asectl(TyperGroup):
    """The top-level group: every command runs inside its :meth:`invoke`, in ``asectl`` and in
    whatever calls the app in-process (Click's standalone mode would let the error out); and every
    command's help text is shown as written (:mod:`ase_serving.cli.helptext`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        prepare(self)  # Typer made every command under this group before it

    # ``ctx`` is a Context of the Click that Typer carries inside it (``typer._click``), no public name.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            abort(str(exc), exc.exit_code)


def make_app(argv: list[str] | None = None) -> typer.Typer:
    """The ``asectl`` app with the commands that ``argv`` (the arguments) needs; every one for None."""
    app = typer.Typer(
        name="asectl",
        help="ASE serving: serve engine plugins (wrapper.py) behind a validated, load-balanced API.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        cls=_Asectl,
    )

    @app.callback()
    def _group() -> None:
        # A group even when one command is registered (Typer would make that command the app).
        pass

    only = wanted(argv, {**GROUPS, **COMMANDS}) if argv is not None else None
    for name, module in GROUPS.items():
        if only in (None, module):
            group = importlib.import_module(f"ase_serving.cli.{module}")
            sub = group.make_app(argv[1:]) if argv is not None and hasattr(group, "make_app") else group.app
            app.add_typer(sub, name=name)
    for module in dict.fromkeys(COMMANDS.values()):
        if only in (None, module):
            importlib.import_module(f"ase_serving.cli.{module}").register(app)
    return app


def main() -> None:
    make_app(sys.argv[1:])()


def __getattr__(name: str) -> Any:
    if name == "app":  # every command, for tools that look for the Typer app
        return make_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
