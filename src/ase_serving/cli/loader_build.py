"""``asectl loader build``: a loader image from a wrapper project, on top of the loader base image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ase_serving.cluster.images import LOADER_BASE_IMAGE, build_loader

HELP = """Build a docker image of the wrapper project DIR: FROM the loader base image, DIR copied to
/app, its requirements.txt pip-installed; the image serves it with `asectl loader run /app`.
The tag defaults to ase-NAME:VERSION from ase.toml's [service]. The loader base image must be on
this machine: `asectl images build` makes it. One line per build step (--verbose: docker's output).

Example:

    asectl loader build examples/echo            # ase-echo:1.0.0

    asectl loader test examples/echo --image ase-echo:1.0.0
"""


def register(app: typer.Typer) -> None:
    @app.command("build", help=HELP)
    def build(
        folder: Annotated[Path, typer.Argument(metavar="DIR", help="the wrapper project folder")] = Path("."),
        tag: Annotated[str | None, typer.Option("-t", "--tag", help="image tag")] = None,
        base: Annotated[str, typer.Option("--base", help="loader base image")] = LOADER_BASE_IMAGE,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show docker's whole output")] = False,
    ) -> None:
        built = build_loader(folder, tag, base, say=lambda line: typer.echo(line, err=True), verbose=verbose)
        typer.echo(f"built {built}; `asectl loader test {folder} --image {built}` tests it")
