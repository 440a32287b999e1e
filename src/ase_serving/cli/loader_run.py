"""``asectl loader run``: serve a wrapper project over gRPC until SIGTERM/Ctrl-C.

The options are :class:`~ase_serving.cli.loader_serve.RunOptions`'s fields (defined there only) and
parsed here, by the command built from them; the loader itself is
:mod:`ase_serving.cli.loader_serve`, which this process becomes (same pid) without the command line
tool's modules.
"""

from __future__ import annotations

import typer

from ase_serving.cli.loader_serve import RunOptions, start
from ase_serving.cli.server_command import options_command

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
    options_command(
        app,
        "run",
        RunOptions,
        start,
        "Serve a wrapper project: gRPC Once/Session/Info, N worker processes x L licences.",
        _EPILOG,
    )
