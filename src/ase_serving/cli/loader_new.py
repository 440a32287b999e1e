"""``asectl loader new``: scaffold a wrapper project that passes ``asectl loader test`` as generated."""

from __future__ import annotations

import enum
import re
import shlex
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template
from typing import Annotated

import typer

from ase_serving.cli.common import abort

HELP = """Create the wrapper project NAME (in PARENT, default the current folder): wrapper.py with a
working echo engine, ai_api.yml (its API: what the gateway checks and documents), ase.toml,
requirements.txt, README.md and tests/ with a success case and expected-error cases. It passes
`asectl loader test NAME` as generated, and prints the two commands that serve it through a
gateway: `asectl init` and `asectl loader run NAME --push-schema`.

Example:

    asectl loader new my-engine --mode session && asectl loader test my-engine
"""

#: A project name is also the service name and a folder name: keep it portable.
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
SUFFIX = ".tmpl"


class Mode(str, enum.Enum):
    once = "once"
    session = "session"


def _files(root: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    """(relative path, template) for every file under ``root``."""
    out: list[tuple[str, Traversable]] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        rel = f"{prefix}{entry.name}"
        if entry.is_dir():
            out.extend(_files(entry, rel + "/"))
        elif entry.name.endswith(SUFFIX):
            out.append((rel.removesuffix(SUFFIX), entry))
    return out


def render(name: str, mode: str) -> dict[str, str]:
    """The project's files (relative path -> text) for ``name`` and ``mode``."""
    templates = resources.files("ase_serving.cli") / "templates"
    values = {"name": name, "mode": mode}
    files: dict[str, str] = {}
    for part in ("common", mode):
        for rel, entry in _files(templates / part):
            files[rel] = Template(entry.read_text(encoding="utf-8")).substitute(values)
    return files


def scaffold(target: Path, name: str, mode: str) -> list[str]:
    """Write the project into ``target`` (absent or empty); returns the files written."""
    files = render(name, mode)
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(files)


def next_steps(folder: str) -> str:
    """The dev loop of a new project: serve it through a local gateway, then edit, test, run again."""
    run = f"asectl loader run {shlex.quote(folder)} --push-schema"
    width = max(len(run), len("asectl init")) + 3
    return (
        "next, to serve it through a gateway:\n"
        f"  {'asectl init':<{width}}# once: a local cluster (config centre + gateway)\n"
        f"  {run:<{width}}# prints its API and docs URLs and a call to try\n"
        f"after an edit of wrapper.py or ai_api.yml: `asectl loader test {shlex.quote(folder)}`, "
        "then Ctrl-C the loader and run it again (--push-schema sends the new API to the gateway)"
    )


def register(app: typer.Typer) -> None:
    @app.command("new", help=HELP)
    def new(
        name: Annotated[str, typer.Argument(help="project, folder and service name")],
        mode: Annotated[Mode, typer.Option("--mode", help="once requests or sessions")] = Mode.once,
        parent: Annotated[Path, typer.Option("--dir", help="the folder to create NAME in")] = Path("."),
    ) -> None:
        if not NAME.match(name):
            abort(
                f"invalid project name {name!r}: start with a letter, then letters, digits, '-' or '_' "
                "(at most 63 characters)",
                code=2,
            )
        target = parent / name
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            abort(f"{target} already exists and is not empty; choose another NAME or --dir")
        try:
            written = scaffold(target, name, mode.value)
        except OSError as exc:
            abort(f"cannot write {target}: {exc.strerror or exc}")
        typer.echo(f"created {target} ({mode.value} engine): {', '.join(written)}")
        typer.echo(next_steps(str(target)))
