"""``asectl config``: upload, list, show, edit, delete, roll back config items; serve the embedded store."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from ase_serving.cli.common import abort, print_json
from ase_serving.cli.server_command import server_command
from ase_serving.cluster.access import load_settings, run_with_backend
from ase_serving.cluster.items import (
    Checked,
    check_content,
    check_routes,
    content_doc,
    iso_time,
    item_doc,
    resolve,
)
from ase_serving.cluster_settings import ClusterSettings
from ase_serving.schema import Problem
from ase_serving.store import Backend, ConfigItem, ConfigKey, ConfigScope, NotFound, StoreError
from ase_serving.store.embedded.settings import ENV_PREFIX, MODULE, EmbeddedSettings

app = typer.Typer(
    help="Config items in the config centre (service schemas and any other file).", no_args_is_help=True
)

Project = Annotated[str | None, typer.Option("--project", help="Project (default: from `asectl setup`).")]
Group = Annotated[str | None, typer.Option("--group", help="Group (default: from `asectl setup`).")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
Name = Annotated[
    str,
    typer.Argument(help="Item name (.json may be left out), or service/version/name when it is ambiguous."),
]
Force = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Store a service schema even when another schema asks for one of its routes (the "
        "gateway then serves only the highest version there).",
    ),
]


def _scope(settings: ClusterSettings) -> ConfigScope:
    try:
        return ConfigScope(settings.project, settings.group)
    except StoreError as exc:
        abort(str(exc), 2)


def _refuse(what: str, problems: list[Problem], extra: str = "") -> NoReturn:
    """Every problem on its own line after the one-line reason, so all can be fixed at once."""
    lines = [f"error: {what} is refused: {len(problems)} problem(s) in the service schema{extra}"]
    lines += [f"  {p}" for p in problems]
    typer.echo("\n".join(lines), err=True)
    raise typer.Exit(1)


@app.command(
    "upload",
    epilog="Example:\n\n  asectl config upload schemas/echo.json\n\n"
    "  asectl config upload model.conf --service echo --version 1.0",
)
def upload(
    file: Annotated[Path, typer.Argument(help="The file to push (a service schema JSON, or any file).")],
    project: Project = None,
    group: Group = None,
    service: Annotated[
        str | None, typer.Option("--service", help="Default: the schema's meta.serviceId.")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Default: the schema's meta.version.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Item name (default: the file name).")] = None,
    force: Force = False,
    as_json: Json = False,
) -> None:
    """Push a file as a new revision of a config item; a service schema is checked first (as
    `asectl api create` checks an API definition) and refused when another schema has its route."""
    try:
        content = file.read_bytes()
    except OSError as exc:
        abort(f"cannot read {file}: {exc.strerror or exc}", 2)
    name = name or file.name
    checked = check_content(name, content, service, version)
    if checked.problems:
        _refuse(str(file), checked.problems)
    service = service or _meta_str(checked, "serviceId")
    version = version or _meta_str(checked, "version")
    for flag, value in (("--service", service), ("--version", version)):
        if not value:
            abort(f"{flag} is required: {file} is not a service schema that names it", 2)
    assert service is not None and version is not None
    settings = load_settings(project, group)
    try:
        key = ConfigKey(settings.project, settings.group, service, version, name)
    except StoreError as exc:
        abort(str(exc), 2)

    async def work(b: Backend) -> ConfigItem:
        for warning in await check_routes(b.config, key, content, str(file), force):
            typer.echo(f"warning: {warning}", err=True)
        return await b.config.put(key, content)

    item: ConfigItem = run_with_backend(settings, work)
    if as_json:
        print_json(item_doc(item))
    else:
        typer.echo(f"uploaded {key.service}/{key.version}/{key.name}: revision {item.revision}")


def _meta_str(checked: Checked, field: str) -> str | None:
    value = checked.meta.get(field)
    return value if isinstance(value, str) and value else None


@app.command("list", epilog="Example:\n\n  asectl config list --json")
def list_items(project: Project = None, group: Group = None, as_json: Json = False) -> None:
    """List the config items of the project and group (latest revision of each)."""
    settings = load_settings(project, group)
    scope = _scope(settings)

    async def work(b: Backend) -> list[ConfigItem]:
        return (await b.config.list(scope))[0]

    items: list[ConfigItem] = run_with_backend(settings, work)
    docs = [item_doc(i) for i in items]
    if as_json:
        print_json({"project": scope.project, "group": scope.group, "items": docs})
        return
    if not docs:
        typer.echo(f"no config items in project {scope.project}, group {scope.group}")
        return
    table = Table("service", "version", "name", "revision", "updated", "size", box=None)
    for d in docs:
        table.add_row(d["service"], d["version"], d["name"], str(d["revision"]), d["updated"], str(d["size"]))
    Console(width=200).print(table)


@app.command(
    "show",
    epilog="Examples:\n\n  asectl config show echo.json > echo.json\n\n"
    "  asectl config show echo.json --history\n\n  asectl config show echo/1.0/echo.json --revision 2 --json",
)
def show(
    name: Name,
    revision: Annotated[int | None, typer.Option("--revision", help="Show this revision.")] = None,
    history: Annotated[bool, typer.Option("--history", help="List the item's revisions.")] = False,
    project: Project = None,
    group: Group = None,
    as_json: Json = False,
) -> None:
    """Print an item's content (stdout, as stored), or its revision history."""
    settings = load_settings(project, group)
    scope = _scope(settings)

    async def work(b: Backend) -> tuple[ConfigItem, list[ConfigItem]]:
        key = await resolve(b.config, scope, name)
        if history:
            revs = await b.config.history(key)
            return revs[-1], revs
        return await b.config.get(key, revision), []

    item, revs = run_with_backend(settings, work)
    if history:
        entries = [
            {"revision": r.revision, "updated": iso_time(r.updated), "size": len(r.content)} for r in revs
        ]
        if as_json:
            print_json({**item_doc(item), "history": entries})
            return
        table = Table("revision", "updated", "size", box=None)
        for e in entries:
            table.add_row(str(e["revision"]), str(e["updated"]), str(e["size"]))
        k = item.key
        typer.echo(f"{k.service}/{k.version}/{k.name} (project {k.project}, group {k.group})")
        Console(width=200).print(table)
    elif as_json:
        print_json(content_doc(item))
    else:
        k = item.key
        typer.echo(f"{k.service}/{k.version}/{k.name} revision {item.revision}", err=True)
        sys.stdout.buffer.write(item.content)
        sys.stdout.flush()


@app.command("edit", epilog="Example:\n\n  EDITOR=nano asectl config edit echo.json")
def edit(name: Name, project: Project = None, group: Group = None, force: Force = False) -> None:
    """Open an item in $EDITOR (else vi), check the result like `upload` does, and push it.

    An invalid edit is refused and nothing changes; the edited text is kept in a temporary file
    whose path is printed, so no work is lost.
    """
    settings = load_settings(project, group)
    scope = _scope(settings)

    async def fetch(b: Backend) -> ConfigItem:
        return await b.config.get(await resolve(b.config, scope, name))

    item: ConfigItem = run_with_backend(settings, fetch)
    key = item.key
    was_schema = check_content(key.name, item.content).schema
    fd, tmp = tempfile.mkstemp(prefix="ase-edit-", suffix=f"-{key.name}")
    with os.fdopen(fd, "wb") as fh:
        fh.write(item.content)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        code = subprocess.run([*shlex.split(editor), tmp], check=False).returncode
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        abort(f"cannot run the editor {editor!r}: {exc.strerror or exc}; set $EDITOR")
    if code != 0:
        abort(f"the editor exited with code {code}; nothing changed (your text is in {tmp})")
    new = Path(tmp).read_bytes()
    if new == item.content:
        Path(tmp).unlink(missing_ok=True)
        typer.echo(f"no change to {key.service}/{key.version}/{key.name}")
        return
    checked = check_content(key.name, new, key.service, key.version, schema=was_schema)
    if checked.problems:
        _refuse("the edit", checked.problems, f"; nothing changed, your text is kept in {tmp}")

    async def push(b: Backend) -> ConfigItem:
        latest = await b.config.get(key)
        if latest.revision != item.revision:
            raise StoreError(
                f"{key.service}/{key.version}/{key.name} changed meanwhile (now revision {latest.revision}); "
                f"nothing written, your text is kept in {tmp}"
            )
        what = f"the edit (kept in {tmp})"
        for warning in await check_routes(b.config, key, new, what, force):
            typer.echo(f"warning: {warning}", err=True)
        return await b.config.put(key, new)

    written: ConfigItem = run_with_backend(settings, push)
    Path(tmp).unlink(missing_ok=True)
    typer.echo(f"edited {key.service}/{key.version}/{key.name}: revision {written.revision}")


@app.command("delete", epilog="Example:\n\n  asectl config delete echo.json --yes")
def delete(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed without a terminal).")] = False,
    project: Project = None,
    group: Group = None,
) -> None:
    """Remove an item (its history stays: `config rollback` restores it). A deleted service schema
    removes its route from the gateways.

    On a terminal it asks first; without one it refuses (exit 2) unless --yes is given, because
    the safe answer to an unasked question is no.
    """
    settings = load_settings(project, group)
    scope = _scope(settings)

    async def find(b: Backend) -> ConfigKey:
        return await resolve(b.config, scope, name)

    key: ConfigKey = run_with_backend(settings, find)
    shown = f"{key.service}/{key.version}/{key.name}"
    if not yes:
        if not sys.stdin.isatty():
            abort(f"deleting {shown} needs confirmation: add --yes (there is no terminal to ask on)", 2)
        if not typer.confirm(f"delete {shown} (project {key.project}, group {key.group})?", default=False):
            abort("not deleted")

    async def remove(b: Backend) -> int:
        return await b.config.delete(key)

    run_with_backend(settings, remove)
    typer.echo(f"deleted {shown} (restore it with `asectl config rollback {shown} --revision N`)")


@app.command(
    "rollback",
    epilog="Example:\n\n  asectl config show echo.json --history\n\n"
    "  asectl config rollback echo.json --revision 2",
)
def rollback(
    name: Name,
    revision: Annotated[int, typer.Option("--revision", help="The revision whose content to restore.")],
    project: Project = None,
    group: Group = None,
) -> None:
    """Write revision N's content as a new revision (history is never rewritten)."""
    settings = load_settings(project, group)
    scope = _scope(settings)

    async def work(b: Backend) -> ConfigItem:
        key = await resolve(b.config, scope, name)
        try:
            old = await b.config.get(key, revision)
        except NotFound:
            known = ", ".join(str(r.revision) for r in await b.config.history(key))
            raise NotFound(
                f"{key.service}/{key.version}/{key.name} has no revision {revision} (it has {known})"
            ) from None
        return await b.config.put(key, old.content)

    item: ConfigItem = run_with_backend(settings, work)
    k = item.key
    typer.echo(
        f"rolled back {k.service}/{k.version}/{k.name} to revision {revision}'s content: "
        f"now revision {item.revision}"
    )


_SERVE_EPILOG = """\
Example:

  asectl config serve --port 2390 --data ~/.ase/configd

On its first start it creates the account `admin`, its password in DIR/admin.password. Every
flag is also an ASE_CONFIGD_* variable (a flag given wins). Prints one line when listening, e.g.
`config centre serving on http://127.0.0.1:2390 (data /home/me/.ase/configd)`. SIGTERM or Ctrl-C:
exit 0. The command becomes `python -m ase_serving.store.embedded` with the same flags (what
`asectl init` starts and containers run).
"""

server_command(
    app,
    "serve",
    EmbeddedSettings,
    MODULE,
    ENV_PREFIX,
    "Run the embedded config centre in the foreground (Ctrl-C or SIGTERM stops it).",
    _SERVE_EPILOG,
)
