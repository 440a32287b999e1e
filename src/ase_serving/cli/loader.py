"""``asectl loader``: new, test, run, call, build."""

from __future__ import annotations

import importlib
from typing import Any

import typer

#: Commands and the modules that register them (kept out of this file to keep it small).
COMMANDS = {
    "new": "loader_new",
    "test": "loader_test",
    "run": "loader_run",
    "call": "loader_call",
    "build": "loader_build",
}


def make_app(argv: list[str] | None = None) -> typer.Typer:
    """The group with the command that ``argv`` (what follows ``loader``) names; every one for None.

    ``asectl loader run`` becomes the loader: it keeps no gRPC client, test runner or Docker code.
    """
    from ase_serving.cli.main import wanted

    app = typer.Typer(help="Create, test and serve engine plugins (wrapper projects).", no_args_is_help=True)
    only = wanted(argv, COMMANDS) if argv is not None else None
    for module in COMMANDS.values():
        if only in (None, module):
            importlib.import_module(f"ase_serving.cli.{module}").register(app)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return make_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
