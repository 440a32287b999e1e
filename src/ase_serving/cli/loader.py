"""``asectl loader``: new, test, run, call, build."""

from __future__ import annotations

import typer

app = typer.Typer(help="Create, test and serve engine plugins (wrapper projects).", no_args_is_help=True)

# Commands are registered by their modules (loader_new, loader_test, loader_run) to keep this file small.
from ase_serving.cli import loader_build, loader_call, loader_new, loader_run, loader_test  # noqa: E402

loader_new.register(app)
loader_test.register(app)
loader_run.register(app)
loader_call.register(app)
loader_build.register(app)
