"""``asectl api``: make the service schema from ApiSchema YAML (create) or the Api class (gen), push it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ase_serving.cli.common import abort, print_json
from ase_serving.cluster.access import load_settings, run_with_backend
from ase_serving.cluster.items import item_doc
from ase_serving.home import ClusterSettings, SettingsError
from ase_serving.loader.project import load_project
from ase_serving.schema import ApiDefinitionError, Compiled, from_code, from_yaml
from ase_serving.store import Backend, ConfigItem, ConfigKey, StoreError
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


def _refuse(source: object, exc: ApiDefinitionError) -> None:
    lines = [f"error: {source}: {len(exc.problems)} problem(s) in the API definition; nothing was written"]
    lines += [f"  {p}" for p in exc.problems]
    typer.echo("\n".join(lines), err=True)
    raise typer.Exit(1)


def _settings(compiled: Compiled) -> ClusterSettings:
    spec = compiled.spec
    try:
        settings = load_settings(spec.project, spec.group)
        if spec.region and spec.region != settings.region:
            other = ClusterSettings.load(region=spec.region)
            if other is not None:
                other.project, other.group = spec.project or other.project, spec.group or other.group
                return other
            typer.echo(
                f"warning: region {spec.region!r} (metadata.region) is not set up; "
                f"pushing to region {settings.region!r}",
                err=True,
            )
    except (StoreError, SettingsError) as exc:
        abort(f"cannot push: {exc}")
    return settings


def _push(compiled: Compiled) -> ConfigItem:
    settings = _settings(compiled)
    try:
        key = ConfigKey(
            settings.project,
            settings.group,
            compiled.spec.service_id,
            compiled.spec.version,
            compiled.item_name,
        )
    except StoreError as exc:
        abort(f"cannot push: {exc}", 2)

    async def work(b: Backend) -> ConfigItem:
        return await b.config.put(key, compiled.content())

    try:
        item: ConfigItem = run_with_backend(settings, work)
    except StoreError as exc:
        abort(f"cannot push: {exc}; the schema file is written, push it later with `asectl config upload`")
    return item


def _finish(compiled: Compiled, out_dir: Path, push: bool | None, as_json: bool) -> None:
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
        typer.echo(f"wrote {path} (service {spec.service_id} {spec.version})")
    if push is None:
        push = (
            sys.stdin.isatty()
            and not as_json
            and typer.confirm("Push it to the config centre?", default=True)
        )
    item = _push(compiled) if push else None
    if as_json:
        print_json(
            {
                "file": str(path),
                "serviceId": spec.service_id,
                "version": spec.version,
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
    as_json: Json = False,
) -> None:
    """ApiSchema YAML -> the service schema JSON; then push it to the config centre if asked."""
    try:
        compiled = from_yaml(file)
    except ApiDefinitionError as exc:
        _refuse(file, exc)
    _finish(compiled, output, push, as_json)


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
    _finish(compiled, output, push, as_json)
