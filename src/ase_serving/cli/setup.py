"""``asectl setup``: where the config centre is and how to log in; checked, then saved (0600)."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from ase_serving.addr import split_host_port
from ase_serving.cli.common import abort, print_json
from ase_serving.cluster.access import check_access
from ase_serving.cluster_settings import ClusterSettings, SettingsError
from ase_serving.store import InvalidName, StoreError, backend_kind, open_backend
from ase_serving.store.base import DEFAULT_GROUP, DEFAULT_PROJECT, check_name

DEFAULT_ADDRESS = "http://127.0.0.1:2390"

_EPILOG = """\
Examples:

  asectl setup                                  # asks, with the current settings as defaults

  asectl setup --address http://127.0.0.1:2390 --account admin \\
               --password "$(cat ~/.ase/configd/admin.password)"

  asectl setup --address etcd://10.0.0.5:2379,10.0.0.6:2379 --project shop --group prod

  asectl setup --gateway http://10.0.0.7:2392       # what `asectl call` uses (else --gateway)

On a terminal, what no flag gives is asked for (Enter keeps the default shown). Without a terminal
nothing is asked: flags, then the current settings, then defaults are used. The address, account
and password are checked (the store must answer and accept a write from this account) before
anything is saved to $ASE_HOME/cluster.json (readable by you only); exit 1 when they do not work.
A --gateway URL must answer /health; it is kept until another is given (--gateway "" forgets it).
"""


def _ask(label: str, flag: str | None, default: str | None, tty: bool, secret: bool = False) -> str | None:
    if flag is not None:
        return flag or None
    if not tty:
        return default
    if secret:
        hint = " (Enter keeps the saved one)" if default else " (Enter for none)"
        answer = typer.prompt(f"{label}{hint}", default="", hide_input=True, show_default=False)
        return str(answer) or default
    answer = typer.prompt(label, default=default or "", show_default=bool(default))
    return str(answer).strip() or None


def _check_gateway(url: str) -> tuple[str, str]:
    """The (project, group) the gateway at ``url`` serves; exit 1 (nothing saved) when it does not
    answer /health as a gateway does."""
    from urllib.parse import urlsplit

    import httpx

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        abort(f"--gateway {url!r}: give the gateway's http(s) URL, e.g. http://127.0.0.1:2392", 2)
    try:
        resp = httpx.get(f"{url}/health", timeout=5.0)
        doc = resp.json()
    except httpx.HTTPError as exc:
        abort(f"--gateway {url}: no answer ({type(exc).__name__}: {exc}); is it running? (nothing saved)")
    except ValueError:
        abort(f"--gateway {url}: /health did not answer JSON: is this an ASE gateway? (nothing saved)")
    config = doc.get("config") if isinstance(doc, dict) else None
    if resp.status_code not in (200, 503) or not isinstance(config, dict):
        abort(
            f"--gateway {url}: /health answered {resp.status_code} without a gateway's status (nothing saved)"
        )
    return str(config.get("project") or "default"), str(config.get("group") or "default")


def register(app: typer.Typer) -> None:
    @app.command("setup", epilog=_EPILOG)
    def setup(
        address: Annotated[
            str | None,
            typer.Option("--address", help="Config centre: http://HOST:PORT (embedded) or etcd://H:P[,H:P]."),
        ] = None,
        account: Annotated[
            str | None, typer.Option("--account", help="Account name (embedded: admin).")
        ] = None,
        password: Annotated[str | None, typer.Option("--password", help="The account's password.")] = None,
        region: Annotated[str | None, typer.Option("--region", help="Name of these settings.")] = None,
        project: Annotated[str | None, typer.Option("--project", help="Project of config items.")] = None,
        group: Annotated[str | None, typer.Option("--group", help="Group of config items.")] = None,
        lb: Annotated[
            str | None, typer.Option("--lb", help="HOST:PORT of the LB service, if it runs.")
        ] = None,
        gateway: Annotated[
            str | None,
            typer.Option("--gateway", help="The gateway's URL (http://HOST:PORT), for `asectl call`."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the saved settings as JSON.")] = False,
    ) -> None:
        """Store the config centre address, account/password, region, project and group; check them."""
        tty = sys.stdin.isatty()
        try:
            current = ClusterSettings.load(region=region)
        except SettingsError:
            current = None  # an unreadable file is replaced by what this run saves
        region_ = region or (current.region if current else "default")
        addr = _ask("Config centre address", address, current.address if current else DEFAULT_ADDRESS, tty)
        addr = addr or DEFAULT_ADDRESS
        try:
            kind = backend_kind(addr)
        except InvalidName as exc:
            abort(str(exc), 2)
        same_store = current is not None and current.address == addr
        default_account = (
            current.account if current and same_store else ("admin" if kind.startswith("http") else None)
        )
        acct = _ask("Account", account, default_account, tty)
        pw = _ask(
            "Password", password, current.password if current and same_store else None, tty, secret=True
        )
        proj = (
            _ask("Project", project, current.project if current else DEFAULT_PROJECT, tty) or DEFAULT_PROJECT
        )
        grp = _ask("Group", group, current.group if current else DEFAULT_GROUP, tty) or DEFAULT_GROUP
        lb_ = _ask("LB service HOST:PORT (Enter for none)", lb, current.lb if current else None, tty)
        try:
            check_name("region", region_)
            check_name("project", proj)
            check_name("group", grp)
        except InvalidName as exc:
            abort(str(exc), 2)
        if lb_:
            try:
                split_host_port(lb_)
            except ValueError:
                abort(f"--lb {lb_!r} is not HOST:PORT", 2)

        settings = ClusterSettings(addr, acct, pw, region_, proj, grp, lb_ or None)
        if current is not None and same_store:
            settings.components = dict(current.components)
        else:
            settings.components = {"config": addr}
        served: tuple[str, str] | None = None
        if gateway == "":
            settings.components.pop("gateway", None)
        elif gateway is not None:
            url = gateway.rstrip("/")
            served = _check_gateway(url)
            settings.components["gateway"] = url

        async def check() -> None:
            backend = open_backend(addr, acct, pw)
            try:
                await check_access(backend, acct)
            finally:
                await backend.close()

        try:
            asyncio.run(check())
        except InvalidName as exc:
            abort(str(exc), 2)
        except StoreError as exc:
            abort(f"{exc} (nothing saved)")
        path = settings.save()
        if as_json:
            print_json(
                {
                    "address": addr,
                    "backend": kind,
                    "account": acct,
                    "password_set": bool(pw),
                    "region": region_,
                    "project": proj,
                    "group": grp,
                    "lb": settings.lb,
                    "gateway": settings.components.get("gateway"),
                    "saved": str(path),
                }
            )
        else:
            who = f"account {acct}" if acct else "no account"
            typer.echo(f"config centre {addr} ({kind}) answers and accepts {who}")
            if served is not None:
                url = settings.components["gateway"]
                typer.echo(f"gateway {url} answers; it serves project {served[0]}, group {served[1]}")
            typer.echo(f"saved to {path}: region {region_}, project {proj}, group {grp}")
        if served is not None and served != (proj, grp):
            typer.echo(
                f"warning: the gateway serves project {served[0]}, group {served[1]}, not {proj}/{grp}: "
                "what you push there is not served by it",
                err=True,
            )
