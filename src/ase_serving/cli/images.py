"""``asectl images build``: the framework and loader base images that ``asectl loader build`` and
``asectl init --mode compose`` start from, built from this source tree with one line per step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ase_serving.cluster.images import FRAMEWORK_IMAGE, LOADER_BASE_IMAGE, PYTHON_IMAGE

app = typer.Typer(help="The framework and loader base images (Docker).", no_args_is_help=True)

_EPILOG = f"""\
Examples:

  asectl images build                 # {FRAMEWORK_IMAGE} + {LOADER_BASE_IMAGE}

  asectl images build -v              # docker's whole output, not a line per step

  asectl loader build examples/echo   # then a wrapper project's image on them

Both are built from the ase-serving source tree (docker/Dockerfile, docker/loader.Dockerfile): the
one this asectl runs from, or --source DIR. The framework image starts from {PYTHON_IMAGE}, which
docker pulls when this machine does not have it; where no registry is reachable, scripts/docker-base
makes a local stand-in. pip's output stays quiet; a failed step shows the last lines of docker's
output. A second run reuses docker's cache and takes seconds.
"""


@app.command("build", epilog=_EPILOG)
def build(
    source: Annotated[
        Path | None,
        typer.Option("--source", metavar="DIR", help="The ase-serving source tree (default: this asectl's)."),
    ] = None,
    python: Annotated[
        str, typer.Option("--python-base", metavar="IMAGE", help="The Python base of the framework image.")
    ] = PYTHON_IMAGE,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show docker's whole output.")] = False,
) -> None:
    """Build the framework image and the loader base image from the ase-serving source tree."""
    from ase_serving.cluster.builds import build_base_images, source_tree
    from ase_serving.cluster.images import check_engine

    tree = source_tree(source)
    check_engine()
    start = time.monotonic()
    tags = build_base_images(tree, python, say=lambda line: typer.echo(line, err=True), verbose=verbose)
    typer.echo(
        f"built {' and '.join(tags)} in {time.monotonic() - start:.0f} s; "
        "`asectl loader build DIR` builds a wrapper project's image on them"
    )
