"""``asectl api``: make the service schema from ApiSchema YAML (create) or the Api class (gen), push it."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from ase_serving.cli.common import abort, print_json
from ase_serving.cluster.items import RouteTaken, item_doc
from ase_serving.cluster.schemas import push_schema, push_target
from ase_serving.loader.project import load_project
from ase_serving.schema import ApiDefinitionError, Compiled, from_code, from_yaml
from ase_serving.store import ConfigItem, StoreError
from ase_serving.store.base import InvalidName
from ase_serving.wrapper.plugin import resolve_path

app = typer.Typer(
    help="Service schemas from an API definition (ApiSchema YAML or the Api class).", no_args_is_help=True
)

OutDir = Annotated[Path, typer.Option("-o", "--output", help="Folder to write <name>.json into.")]
Push = Annotated[
    bool | None,
    typer.Option("--push/--no-push", help="Push to the config centre (default: ask on a terminal, else no)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document (file, item, warnings).")]
Force = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Push even when another schema of the project/group asks for the same route (the "
        "gateway then serves only the highest version there).",
    ),
]


def _refuse(source: object, exc: ApiDefinitionError) -> None:
    lines = [f"error: {source}: {len(exc.problems)} problem(s) in the API definition; nothing was written"]
    lines += [f"  {p}" for p in exc.problems]
    typer.echo("\n".join(lines), err=True)
    raise typer.Exit(1)


def _push(compiled: Compiled, force: bool) -> ConfigItem:
    try:
        target = push_target(compiled.spec)
    except InvalidName as exc:
        abort(f"cannot push: {exc}", 2)
    except StoreError as exc:
        abort(f"cannot push: {exc}")
    for note in target.notes:
        typer.echo(f"warning: {note}", err=True)
    before = len(target.notes)
    try:
        item = asyncio.run(push_schema(target, compiled, force))
    except RouteTaken:
        raise  # its own line says what to do; `config upload` would refuse it too
    except StoreError as exc:
        abort(f"cannot push: {exc}; the schema file is written, push it later with `asectl config upload`")
    for note in target.notes[before:]:
        typer.echo(f"warning: {note}", err=True)
    return item


def _names(compiled: Compiled) -> str:
    """Why the config item's name differs from the file's, when it does (the seed's YAML names
    both: metadata.name the generated file, metadata.configFileName the item in the config centre)."""
    spec = compiled.spec
    if compiled.item_name == spec.file_name:
        return ""
    return (
        f"; its config item is {compiled.item_name}: metadata.configFileName names the item, "
        "metadata.name the file"
    )


def _finish(compiled: Compiled, out_dir: Path, push: bool | None, as_json: bool, force: bool) -> None:
    for w in compiled.warnings:
        typer.echo(f"warning: {w}", err=True)
    path = out_dir / compiled.spec.file_name
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(compiled.content())
    except OSError as exc:
        abort(f"cannot write {path}: {exc.strerror or exc}")
    spec = compiled.spec
    if not as_json:
        typer.echo(f"wrote {path} (service {spec.service_id} {spec.version}{_names(compiled)})")
    if push is None:
        push = (
            sys.stdin.isatty()
            and not as_json
            and typer.confirm("Push it to the config centre?", default=True)
        )
    item = _push(compiled, force) if push else None
    if as_json:
        print_json(
            {
                "file": str(path),
                "serviceId": spec.service_id,
                "version": spec.version,
                "item": compiled.item_name,
                "pushed": item_doc(item) if item is not None else None,
                "warnings": [str(w) for w in compiled.warnings],
            }
        )
    elif item is not None:
        k = item.key
        typer.echo(
            f"pushed {k.service}/{k.version}/{k.name} to {k.project}/{k.group}: revision {item.revision}"
        )


@app.command(
    "create",
    epilog="Example:\n\n  asectl api create -f ai_api.yml      # writes ./schemas/<metadata.name>.json\n\n"
    "  asectl api create -f ai_api.yml -o out --push",
)
def create(
    file: Annotated[Path, typer.Option("-f", "--file", help="The ApiSchema YAML (ai_api.yml).")],
    output: OutDir = Path("schemas"),
    push: Push = None,
    force: Force = False,
    as_json: Json = False,
) -> None:
    """ApiSchema YAML -> the service schema JSON; then push it to the config centre if asked."""
    try:
        compiled = from_yaml(file)
    except ApiDefinitionError as exc:
        _refuse(file, exc)
    _finish(compiled, output, push, as_json, force)


@app.command(
    "gen",
    epilog="Example:\n\n  asectl api gen wrapper.py                   # writes ./schemas/<service>.json\n\n"
    "  asectl api gen examples/tts/wrapper.py --no-push",
)
def gen(
    wrapper: Annotated[
        Path, typer.Argument(help="The wrapper.py holding an Api(BaseASEApi) class, or its folder.")
    ],
    output: OutDir = Path("schemas"),
    push: Push = None,
    force: Force = False,
    as_json: Json = False,
) -> None:
    """The Api(BaseASEApi) class of a wrapper.py -> the service schema JSON.

    The service name and version come from the project, as for `asectl loader run`."""
    file = resolve_path(wrapper)
    if not file.is_file():
        abort(f"{file}: no such file (give the wrapper.py that defines the Api class)", 2)
    settings = load_project(file.parent)
    try:
        compiled = from_code(file, settings.service, settings.version)
    except ApiDefinitionError as exc:
        _refuse(file, exc)
    _finish(compiled, output, push, as_json, force)


def _caller() -> tuple[str, str, str | None, str | None]:
    """`asectl call`'s gateway and credentials, for the page's "try it"; what it would print as
    an error becomes the page's one line."""
    import io

    from ase_serving.cli import call
    from ase_serving.designer.remote import RemoteError

    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return (call.gateway_url(None), *call.credentials(None, None, None))
    except typer.Exit:
        raise RemoteError(said.getvalue().strip().removeprefix("error: ")) from None


@app.command(
    "web",
    epilog="Examples:\n\n  asectl api web                    # the project in this folder: ./ai_api.yml\n\n"
    "  asectl api web examples/echo --port 8765 --no-open\n\n"
    "The printed URL carries a token that every change (save, push, try it) needs.",
)
def web(
    folder: Annotated[
        Path, typer.Argument(help="The project folder: its ai_api.yml is opened and saved.")
    ] = Path("."),
    file: Annotated[
        Path | None, typer.Option("-f", "--file", help="The ApiSchema YAML to open and save instead.")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: a free one).")] = 0,
    no_open: Annotated[bool, typer.Option("--no-open", help="Do not open a browser.")] = False,
) -> None:
    """The API design page: design ai_api.yml in a browser, check it as you type, save, push, try it.

    Serves on HOST:PORT until Ctrl-C, prints one line with the page's URL and opens it in a
    browser where there is a display."""
    import os
    import threading
    import webbrowser

    from ase_serving.addr import announce
    from ase_serving.designer.run import serve
    from ase_serving.designer.server import Project
    from ase_serving.loader.project import find_api_yaml

    if not folder.is_dir():
        abort(f"{folder}: no such folder (give the project folder, or use -f FILE)", 2)
    if file is not None and file.exists() and not file.is_file():
        abort(f"{file}: not a file (give the ApiSchema YAML to open)", 2)
    target = file or find_api_yaml(folder) or folder / "ai_api.yml"
    display = sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )

    def ready(url: str) -> None:
        announce("api design page", url, f"(project {folder}; Ctrl-C stops it)")
        if display and not no_open:
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    with contextlib.suppress(KeyboardInterrupt):
        serve(Project(folder, target), host, port, _caller, ready)
