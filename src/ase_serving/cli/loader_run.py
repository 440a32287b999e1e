"""``asectl loader run``: serve a wrapper project over gRPC until SIGTERM/Ctrl-C.

The options are parsed here; the loader itself is :mod:`ase_serving.cli.loader_serve`, which this
process becomes (same pid) without the command line tool's modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

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
service schema made from ai_api.yml (or the Api class) and schemas/*.json when the
config centre lacks them; then it prints the API and docs URLs and an `asectl call`
line to try.

When the config centre holds a schema that differs from the project's, it says so
and keeps it; --push-schema replaces it (the edit-and-run loop:
`asectl loader run DIR --push-schema`). A project with a broken API definition is
refused at start (`asectl loader test DIR` lists its problems).

A loader listening on 0.0.0.0 registers --advertise HOST[:PORT] (a PORT there is the data port; or
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
        push_schema: Annotated[
            bool,
            typer.Option(
                "--push-schema",
                help="Replace the config centre's copy of the project's schema when it differs "
                "(after an edit of ai_api.yml).",
            ),
        ] = False,
    ) -> None:
        """Serve a wrapper project: gRPC Once/Session/Info, N worker processes x L licences."""
        from ase_serving.cli.loader_serve import RunOptions, start

        start(
            RunOptions(
                str(folder),
                service,
                version,
                workers,
                lic,
                port,
                host,
                data_port,
                data_host,
                metrics_port,
                standalone,
                ttl,
                advertise,
                log_level,
                str(data_tls_cert) if data_tls_cert is not None else None,
                str(data_tls_key) if data_tls_key is not None else None,
                push_schema,
            )
        )
