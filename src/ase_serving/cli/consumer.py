"""``asectl consumer``: the apps that may call the gateway (add, list, set, rotate, remove).

A consumer's API key and secret are printed once, by ``add`` and ``rotate``; the config centre
keeps only the key's digest (and the secret, which HMAC signatures need, under a prefix that
needs an account to read). See :mod:`ase_serving.store.consumers`.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ase_serving.cli.common import abort, print_json
from ase_serving.cluster.access import load_settings, run_with_backend
from ase_serving.cluster_settings import ClusterSettings
from ase_serving.store import Backend, StoreError
from ase_serving.store.consumers import ConsumerStore, IssuedCredentials

app = typer.Typer(help="Consumers: the apps that may call the gateway, and their keys.", no_args_is_help=True)
T = TypeVar("T")

Project = Annotated[str | None, typer.Option("--project", help="Project (default: from `asectl setup`).")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
AppId = Annotated[str, typer.Argument(help="The consumer's app id.")]
Services = Annotated[
    list[str] | None,
    typer.Option("--service", help="A service the consumer may call (repeatable; default: every one)."),
]
Rps = Annotated[float | None, typer.Option("--rps", min=0, help="Requests per second (0 = no limit).")]
Sessions = Annotated[
    int | None, typer.Option("--sessions", min=0, help="Sessions open at once (0 = no limit).")
]


def store_of(backend: Backend, project: str) -> ConsumerStore:
    kv = getattr(backend.config, "kv", None)
    if kv is None:
        raise StoreError(
            f"the config centre at {backend.address} ({backend.kind}) cannot hold consumers: use the "
            "embedded config centre or etcd, or run the gateway with --auth proxy"
        )
    return ConsumerStore(kv, project)


def _with_store(project: str | None, work: Callable[[ConsumerStore], Awaitable[T]]) -> T:
    settings: ClusterSettings = load_settings(project)
    return run_with_backend(settings, lambda b: work(store_of(b, settings.project)))


def _show_credentials(creds: IssuedCredentials, as_json: bool, what: str) -> None:
    if as_json:
        print_json(creds.doc())
        return
    typer.echo(f"{what} consumer {creds.app_id}; its credentials (shown once, keep them safe):")
    typer.echo(f"  app_id      {creds.app_id}")
    typer.echo(f"  api_key     {creds.api_key}")
    typer.echo(f"  api_secret  {creds.api_secret}")


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@app.command(
    "add",
    epilog="Example:\n\n  asectl consumer add --name demo --service echo --rps 10 --sessions 2 --json",
)
def add(
    app_id: Annotated[str | None, typer.Option("--app-id", help="Default: 8 random hex digits.")] = None,
    name: Annotated[str, typer.Option("--name", help="A label for people.")] = "",
    service: Services = None,
    rps: Rps = None,
    sessions: Sessions = None,
    project: Project = None,
    as_json: Json = False,
) -> None:
    """Add a consumer and print its app id, API key and secret (once)."""
    creds = _with_store(project, lambda s: s.add(app_id, name, service or (), rps or 0, sessions or 0))
    _show_credentials(creds, as_json, "added")


@app.command("list")
def list_(project: Project = None, as_json: Json = False) -> None:
    """The consumers (never their keys: only the first 8 characters, to tell keys apart)."""
    records = _with_store(project, lambda s: s.list())
    docs = [r.public() for r in records]
    if as_json:
        print_json(docs)
        return
    if not docs:
        typer.echo("no consumers: add one with `asectl consumer add`")
        return
    table = Table("app id", "name", "key", "services", "rps", "sessions", "rotated", box=None)
    for d in docs:
        table.add_row(
            d["app_id"],
            d["name"],
            f"{d['key_id']}…",
            ", ".join(d["services"]) or "all",
            f"{d['rps']:g}" if d["rps"] else "-",
            str(d["sessions"]) if d["sessions"] else "-",
            _when(d["rotated"]),
        )
    Console().print(table)


@app.command("set", epilog="Example:\n\n  asectl consumer set a1b2c3d4 --service echo --service asr --rps 5")
def set_(
    app_id: AppId,
    service: Services = None,
    all_services: Annotated[bool, typer.Option("--all-services", help="May call every service.")] = False,
    rps: Rps = None,
    sessions: Sessions = None,
    name: Annotated[str | None, typer.Option("--name", help="A label for people.")] = None,
    project: Project = None,
    as_json: Json = False,
) -> None:
    """Change what a consumer may call and its limits (its keys stay)."""
    fields: dict[str, Any] = {}
    if service and all_services:
        abort("give --service or --all-services, not both", 2)
    if service or all_services:
        fields["services"] = service or ()
    for key, value in (("rps", rps), ("sessions", sessions), ("name", name)):
        if value is not None:
            fields[key] = value
    if not fields:
        abort("nothing to change: give --service, --all-services, --rps, --sessions or --name", 2)
    record = _with_store(project, lambda s: s.update(app_id, **fields))
    if as_json:
        print_json(record.public())
    else:
        typer.echo(f"consumer {app_id} changed")


@app.command("rotate")
def rotate(app_id: AppId, project: Project = None, as_json: Json = False) -> None:
    """New API key and secret for a consumer; the old ones stop working at once."""
    creds = _with_store(project, lambda s: s.rotate(app_id))
    _show_credentials(creds, as_json, "rotated")


@app.command("remove")
def remove(app_id: AppId, project: Project = None, as_json: Json = False) -> None:
    """Remove a consumer: its keys stop working at once."""
    _with_store(project, lambda s: s.remove(app_id))
    if as_json:
        print_json({"app_id": app_id, "removed": True})
    else:
        typer.echo(f"consumer {app_id} removed")
