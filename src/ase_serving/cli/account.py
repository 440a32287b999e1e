"""``asectl account add``: accounts of the embedded config centre, each with a role.

Roles (see :mod:`ase_serving.store.embedded.roles`): ``admin`` does everything and adds
accounts; ``writer`` reads and writes every key (loaders register with one; ``asectl`` commands
that change things need one); ``gateway`` reads every key, consumer secrets included, and writes
nothing (what a gateway or an LB service needs); ``reader`` reads config, registry and consumers
without their secrets, and writes nothing. An etcd config centre has its own users and roles
(``etcdctl user add``, ``etcdctl role grant-permission``).
"""

from __future__ import annotations

import secrets
import sqlite3
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ase_serving.cli.common import abort, print_json
from ase_serving.cluster.access import load_settings, run_with_backend
from ase_serving.store import Backend, StoreError

app = typer.Typer(help="Accounts of the embedded config centre and their roles.", no_args_is_help=True)


class Role(str, Enum):
    admin = "admin"
    writer = "writer"
    gateway = "gateway"
    reader = "reader"


_EPILOG = """\
Example:

  asectl account add gw1 --role gateway --json

Logged in as an admin account of the current cluster (`asectl setup`), or, with --data, written
straight into a config centre's data directory (whoever can write it owns the centre). Without
--password a random one is made and printed once.
"""


@app.command("add", epilog=_EPILOG)
def add(
    name: Annotated[str, typer.Argument(help="The account's name.")],
    role: Annotated[Role, typer.Option("--role", help="What the account may do.", case_sensitive=False)],
    password: Annotated[
        str | None, typer.Option("--password", help="Its password (default: a random one, printed).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Add it to this data directory instead of over HTTP.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Add an account with a role to the embedded config centre."""
    made = password is None
    pw = password if password is not None else secrets.token_urlsafe(24)
    try:
        if data is not None:
            from ase_serving.store.embedded.accounts import add_account

            add_account(data.expanduser(), name, pw, role.value)
        else:
            _add_over_http(name, pw, role.value)
    except (StoreError, OSError, sqlite3.Error) as exc:
        abort(str(exc))
    if as_json:
        print_json({"account": name, "role": role.value, **({"password": pw} if made else {})})
        return
    typer.echo(f"account {name} added with the role {role.value}")
    if made:
        typer.echo(f"  password  {pw}  (shown once)")


def _add_over_http(name: str, password: str, role: str) -> None:
    settings = load_settings()

    async def work(backend: Backend) -> None:
        kv = getattr(backend.config, "kv", None)
        add_account = getattr(kv, "add_account", None)
        if add_account is None:
            raise StoreError(
                f"the config centre at {backend.address} ({backend.kind}) has no accounts of ours: "
                "an etcd has its own (etcdctl user add, etcdctl role grant-permission)"
            )
        await add_account(name, password, role)

    run_with_backend(settings, work)
