"""``asectl init`` (bring up a local cluster) and ``asectl down`` (stop it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ase_serving.cli.common import abort, print_json
from ase_serving.cluster import k8s
from ase_serving.cluster.bringup import (
    CONFIG_PORT,
    GATEWAY_PORT,
    LB_PORT,
    LB_WIRE_PORT,
    InitOptions,
    down_local,
    init_local,
)

_MODES = ("local", "compose", "k8s")

_INIT_EPILOG = """\
Examples:

  asectl init                                   # config centre :2390, LB :2391, gateway :2392

  asectl init --gateway-port 8080 --gateway-workers 2

  asectl init --config etcd://127.0.0.1:2379    # use an existing etcd instead

  asectl init --mode k8s --values my-values.yaml    # helm upgrade --install the packaged chart

  asectl init --mode k8s --dry-run                  # print the manifests (helm template)

Components run in the background (logs in $ASE_HOME/logs, pid files in $ASE_HOME/run); init
returns once each is healthy and saves the address and credentials, so later commands with the
same $ASE_HOME need no `asectl setup`. Running it again starts nothing twice. `asectl down` stops
them.
"""


def _init_compose(folder: Path, gateway_port: int, etcd_port: int | None, as_json: bool) -> None:
    from ase_serving.cluster.compose import ETCD_PORT, ComposeOptions, init_compose
    from ase_serving.cluster.images import check_engine

    check_engine()
    if not as_json:
        typer.echo(f"writing the compose project to {folder} and starting it ...", err=True)
    try:
        port = ETCD_PORT if etcd_port is None else etcd_port
        result = init_compose(ComposeOptions(folder, gateway_port=gateway_port, etcd_port=port))
    except OSError as exc:
        abort(str(exc))
    if as_json:
        print_json(result.doc())
        return
    typer.echo(f"gateway  {result.gateway}")
    typer.echo(f"config   {result.etcd}")
    if result.credentials is not None:
        typer.echo(f"consumer credentials (API key and secret) in {result.credentials}")
    else:
        typer.echo(
            "the project has consumers already (its etcd data volume was kept): "
            "`asectl consumer add` makes one for this machine"
        )
    typer.echo(f"saved to {result.settings_path}; `asectl cluster status` shows the cluster")
    typer.echo(
        f"compose project in {result.folder}; `asectl down` stops it (`--volumes` also deletes etcd's data)"
    )


def _down_compose(volumes: bool) -> list[str]:
    from ase_serving.cluster.compose import down_compose

    try:
        folder = down_compose(volumes=volumes)
    except OSError as exc:
        abort(str(exc))
    return [] if folder is None else [str(folder)]


def register(app: typer.Typer) -> None:
    @app.command("init", epilog=_INIT_EPILOG)
    def init(
        mode: Annotated[
            str, typer.Option("--mode", help="local, compose (docker compose) or k8s (the Helm chart).")
        ] = "local",
        host: Annotated[
            str, typer.Option("--host", help="Interface the components listen on.")
        ] = "127.0.0.1",
        config_port: Annotated[
            int | None,
            typer.Option(
                "--config-port",
                help=f"Config centre port: local, the embedded one's (default {CONFIG_PORT}); "
                "compose, etcd's client port published on 127.0.0.1 (default 2379).",
                show_default=False,
            ),
        ] = None,
        lb_port: Annotated[int, typer.Option("--lb-port", help="LB service port (gRPC).")] = LB_PORT,
        lb_wire_port: Annotated[
            int | None,
            typer.Option(
                "--lb-wire-port",
                help=f"LB service lean-wire port, the one a gateway's --lb names (default {LB_WIRE_PORT}; "
                "a free one when --lb-port is 0).",
                show_default=False,
            ),
        ] = None,
        config: Annotated[
            str | None, typer.Option("--config", help="Use this config centre (e.g. etcd://H:P) instead.")
        ] = None,
        account: Annotated[str | None, typer.Option("--account", help="Account for --config.")] = None,
        password: Annotated[str | None, typer.Option("--password", help="Password for --config.")] = None,
        lb: Annotated[
            bool,
            typer.Option(
                "--lb/--no-lb",
                help="Also start the LB service, for gateways started with --lb (local mode; the "
                "gateway init starts balances in its own process and needs none).",
            ),
        ] = False,
        gateway_port: Annotated[int, typer.Option("--gateway-port", help="Gateway port.")] = GATEWAY_PORT,
        gateway_workers: Annotated[
            int, typer.Option("--gateway-workers", min=1, help="Gateway worker processes.")
        ] = 1,
        no_gateway: Annotated[bool, typer.Option("--no-gateway", help="Do not start the gateway.")] = False,
        folder: Annotated[
            Path, typer.Option("--dir", help="compose: the folder the compose project is written to.")
        ] = Path("ase-compose"),
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
        values: Annotated[
            list[Path] | None,
            typer.Option("--values", "-f", help="k8s: a Helm values file (repeatable, later ones win)."),
        ] = None,
        set_values: Annotated[
            list[str] | None, typer.Option("--set", help="k8s: one Helm value, KEY=VALUE (repeatable).")
        ] = None,
        release: Annotated[
            str, typer.Option("--release", help="k8s: the Helm release name.")
        ] = k8s.DEFAULT_RELEASE,
        namespace: Annotated[
            str, typer.Option("--namespace", "-n", help="k8s: the namespace (created if absent).")
        ] = k8s.DEFAULT_NAMESPACE,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="k8s: print the manifests (helm template), install nothing.")
        ] = False,
        wait: Annotated[bool, typer.Option("--wait", help="k8s: wait until the pods are ready.")] = False,
    ) -> None:
        """Bring up the framework: config centre, LB and gateway as background processes, once healthy."""
        if mode not in _MODES:
            abort(f"--mode {mode!r} is not one of {', '.join(_MODES)}", 2)
        if mode == "k8s":
            opts_k8s = k8s.K8sOptions(
                release, namespace, list(values or []), list(set_values or []), dry_run=dry_run, wait=wait
            )
            k8s.run_helm(opts_k8s)
            return
        if mode == "compose":
            _init_compose(folder, gateway_port, config_port, as_json)
            return
        opts = InitOptions(
            host,
            CONFIG_PORT if config_port is None else config_port,
            lb_port,
            config,
            account,
            password,
            lb=lb,
            lb_wire_port=lb_wire_port,
            gateway_port=gateway_port,
            gateway=not no_gateway,
            gateway_workers=gateway_workers,
        )
        if not as_json:
            typer.echo("starting the local cluster ...", err=True)
        result = init_local(opts)
        if as_json:
            print_json(result.doc())
            return
        for rec in result.components:
            state = "started" if rec.new else "already running"
            typer.echo(f"{rec.name:<8} {rec.url:<32} {state} (pid {rec.pid}, log {rec.log})")
        if config:
            typer.echo(f"config   {config:<32} existing")
        if result.consumer is not None:
            what = "added" if result.consumer.new else "kept"
            typer.echo(
                f"consumer {result.consumer.app_id} {what}: its API key and secret are in "
                f"{result.consumer.credentials}; `asectl consumer` manages consumers"
            )
        typer.echo(f"saved to {result.settings_path}; `asectl cluster status` shows the cluster")

    @app.command("down", epilog="Example:\n\n  asectl down")
    def down(
        volumes: Annotated[
            bool, typer.Option("--volumes", help="compose: also delete the etcd data volume.")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    ) -> None:
        """Stop what `asectl init` started: local processes (SIGTERM, then SIGKILL), a compose project."""
        stopped = down_local()
        composed = _down_compose(volumes)
        if as_json:
            doc = {"stopped": [{**rec.doc(), "graceful": ok} for rec, ok in stopped], "compose": composed}
            print_json(doc)
            return
        for folder in composed:
            typer.echo(f"stopped the compose project in {folder}")
        if not stopped and not composed:
            typer.echo("nothing to stop: no local cluster runs under this ASE_HOME")
        for rec, ok in stopped:
            how = "stopped" if ok else "killed (it did not stop in time)"
            typer.echo(f"{how} {rec.name} (pid {rec.pid}, {rec.url})")
