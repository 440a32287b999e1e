"""``asectl loader run``: serve a wrapper project over gRPC until SIGTERM/Ctrl-C."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ase_serving.cli.common import abort
from ase_serving.errors import AseError

if TYPE_CHECKING:
    from ase_serving.loader.serve import Registrar
    from ase_serving.loader.settings import LoaderSettings

_EPILOG = """\
Example:

  asectl loader run examples/echo --workers 2 --lic 4 --port 50051 --data-port 50052

Prints one line once every worker has run wrapperInit, e.g.
`loader echo 1.0.0 serving on 127.0.0.1:50052 (2 workers x 4 licences); grpc
127.0.0.1:50051; metrics http://127.0.0.1:9100/metrics`: the data port (the lean wire
gateways call; also a Unix socket for gateways on this host), the gRPC interop port
(`asectl loader call`, other languages) and the metrics. SIGTERM or Ctrl-C deregisters,
drains in-flight work, runs wrapperFini and exits 0.

With a cluster set up (`asectl init` or `asectl setup`, or ASE_CONFIG_ADDRESS), the
loader registers its data address and licences in the cluster's registry (the gRPC
address as the `grpc` attribute), keeps the registration alive, and pushes the
project's schemas/*.json when the config centre lacks them. A loader listening on
0.0.0.0 registers --advertise HOST[:PORT] (a PORT there is the data port; or
ASE_LOADER_ADVERTISE), else this host's address towards the config centre. A data port
beyond loopback asks every caller to prove it knows the cluster's secret (kept in the
config centre).
"""


def register(app: typer.Typer) -> None:
    @app.command("run", epilog=_EPILOG)
    def run(
        folder: Annotated[
            Path, typer.Argument(help="The wrapper project (the folder with wrapper.py).")
        ] = Path(),
        service: Annotated[
            str | None,
            typer.Option("--service", help="Service name (default: [service] name or the folder name)."),
        ] = None,
        version: Annotated[
            str | None,
            typer.Option("--version", help="Service version (default: [service] version or 1.0.0)."),
        ] = None,
        workers: Annotated[
            int | None,
            typer.Option("--workers", help="Worker processes, each with its own copy of the engine."),
        ] = None,
        lic: Annotated[
            int | None, typer.Option("--lic", help="Licence slots (concurrent calls/sessions) per worker.")
        ] = None,
        port: Annotated[
            Optional[int],  # noqa: UP045
            typer.Option("--port", help="gRPC (interop) port; 0 picks a free one."),
        ] = None,
        host: Annotated[Optional[str], typer.Option("--host", help="Address to listen on.")] = None,  # noqa: UP045
        data_port: Annotated[
            Optional[int],  # noqa: UP045
            typer.Option("--data-port", help="Data port (what gateways call); 0 picks a free one."),
        ] = None,
        data_tls_cert: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option("--data-tls-cert", help="TLS on the data port: a PEM certificate chain."),
        ] = None,
        data_tls_key: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option("--data-tls-key", help="The key of --data-tls-cert (if not in that file)."),
        ] = None,
        data_host: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option(
                "--data-host",
                help="Address of the data port (default: --host). Beyond loopback, callers must "
                "prove they know the cluster's secret.",
            ),
        ] = None,
        metrics_port: Annotated[
            int | None,
            typer.Option(
                "--metrics-port",
                help="HTTP port of /metrics and /health; 0 picks a free one, -1 turns it off.",
            ),
        ] = None,
        standalone: Annotated[
            bool, typer.Option("--standalone", help="Do not register with the cluster.")
        ] = False,
        ttl: Annotated[
            float,
            typer.Option("--ttl", min=2.0, help="Seconds the registration outlives the last heartbeat."),
        ] = 10.0,
        advertise: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option(
                "--advertise",
                envvar="ASE_LOADER_ADVERTISE",
                help="HOST or HOST:PORT to register (default: the listening address, or for "
                "0.0.0.0 this host's address towards the config centre).",
            ),
        ] = None,
        log_level: Annotated[
            str, typer.Option("--log-level", help="debug, info, warning or error.")
        ] = "info",
    ) -> None:
        """Serve a wrapper project: gRPC Once/Session/Info, N worker processes x L licences."""
        from ase_serving.loader.front import is_loopback
        from ase_serving.loader.project import ProjectError, load_project
        from ase_serving.loader.serve import Ready, serve

        level = getattr(logging, log_level.upper(), None)
        if not isinstance(level, int):
            abort(f"--log-level must be debug, info, warning or error, not {log_level!r}")
        logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
        if level > logging.DEBUG:
            # The store clients log every request at INFO: a heartbeat is not news.
            for name in ("httpx", "httpcore", "aetcd"):
                logging.getLogger(name).setLevel(logging.WARNING)
        try:
            settings = load_project(
                folder,
                service=service,
                version=version,
                workers=workers,
                lic=lic,
                host=host,
                port=port,
                metrics_port=None if metrics_port is None or metrics_port < 0 else metrics_port,
            )
        except ProjectError as exc:
            abort(str(exc))
        if metrics_port is not None and metrics_port < 0:
            settings.metrics_port = None
        if data_port is not None:
            settings.data_port = data_port
        if data_host is not None:
            settings.data_host = data_host
        if data_tls_cert is not None:
            settings.data_tls_cert, settings.data_tls_key = data_tls_cert, data_tls_key

        def ready(info: Ready) -> None:
            s = info.settings
            line = (
                f"loader {s.service} {s.version} serving on {info.data_address} "
                f"({s.workers} worker{'s' if s.workers != 1 else ''} x {s.lic} "
                f"licence{'s' if s.lic != 1 else ''}); grpc {info.address}"
            )
            if info.metrics_url:
                line += f"; metrics {info.metrics_url}"
            sys.stdout.write(line + "\n" + "".join(f"{x}\n" for x in _api_lines(s, gateway)))
            sys.stdout.flush()

        registrar = None if standalone else _cluster_registrar(ttl, advertise)
        if registrar is not None and not is_loopback(settings.data_host or settings.host):
            settings.secret = _cluster_secret()
        gateway = _gateway_url() if registrar is not None else None
        try:
            serve(settings, ready=ready, registrar=registrar)
        except AseError as exc:
            abort(exc.message)
        except KeyboardInterrupt:
            raise typer.Exit(0) from None


def _cluster_secret() -> bytes:
    """The cluster's secret (made now if the config centre has none), for a data port beyond loopback."""
    import asyncio

    from ase_serving.cluster.secret import ensure_secret
    from ase_serving.home import ClusterSettings
    from ase_serving.store import StoreError

    cluster = ClusterSettings.load()
    assert cluster is not None

    async def fetch() -> bytes | None:
        backend = cluster.open()
        try:
            return await ensure_secret(backend)
        finally:
            await backend.close()

    try:
        secret = asyncio.run(fetch())
    except (StoreError, OSError) as exc:
        abort(
            f"cannot read the cluster's secret from {cluster.address}: {exc}; the data port listens beyond "
            "loopback and needs it (or use --data-host 127.0.0.1)"
        )
    if secret is None:
        abort(
            f"the config centre at {cluster.address} cannot hold the cluster's secret: keep the data port "
            "on loopback (--data-host 127.0.0.1)"
        )
    return secret


def _gateway_url() -> str | None:
    from ase_serving.home import ClusterSettings, SettingsError

    try:
        cluster = ClusterSettings.load()
    except SettingsError:
        return None
    return cluster.components.get("gateway") if cluster is not None else None


def _api_lines(settings: LoaderSettings, gateway: str | None) -> list[str]:
    """Where the service's API and its documentation are, when the cluster has a gateway."""
    if not gateway:
        return []
    from ase_serving.loader.registrar import project_routes

    base = gateway.rstrip("/")
    modes = settings.modes or frozenset(("once", "session"))
    how = " and ".join(
        m for m in (("POST" if "once" in modes else ""), ("WebSocket" if "session" in modes else "")) if m
    )
    lines = [f"api  {base}{route}  ({how})" for route in project_routes(settings)]
    lines.append(f"docs {base}/docs?service={settings.service}")
    return lines


def _cluster_registrar(ttl: float, advertise: str | None) -> Registrar | None:
    """The registrar for the cluster set up under $ASE_HOME, or None (said on stderr) when none is."""
    from ase_serving.home import ClusterSettings, SettingsError
    from ase_serving.loader.registrar import ClusterRegistrar
    from ase_serving.store import StoreError, backend_kind

    try:
        cluster = ClusterSettings.load()
    except SettingsError as exc:
        abort(str(exc))
    if cluster is None:
        typer.echo(
            "no cluster set up (run `asectl init`, or `asectl setup` to use an existing one): "
            "serving standalone",
            err=True,
        )
        return None
    try:
        backend_kind(cluster.address)
    except StoreError as exc:
        abort(f"{exc}; run `asectl setup` again, or use --standalone")
    return ClusterRegistrar(cluster, ttl=ttl, advertise=advertise)
