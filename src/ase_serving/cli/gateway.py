"""``asectl gateway serve``: run the gateway in the foreground (what ``python -m ase_serving.gateway``
runs; the flags are :class:`~ase_serving.gateway.settings.GatewaySettings`'s)."""

from __future__ import annotations

import typer

from ase_serving.cli.server_command import server_command
from ase_serving.gateway.settings import GatewaySettings

_EPILOG = """\
Example:

  asectl gateway serve --port 2392 --workers 2 --config http://127.0.0.1:2390

The config centre and its credentials default to the cluster settings (`asectl setup`,
`asectl init`, ASE_CONFIG_*). Every flag is also an ASE_GATEWAY_* variable (a flag given
wins). Prints one line when listening, e.g. `gateway serving on http://127.0.0.1:2392 (workers
2)`. SIGTERM or Ctrl-C: exit 0. The command becomes `python -m ase_serving.gateway` with the
same flags (what containers run), so the gateway does not carry the command line tool.
"""

app = typer.Typer(
    help="The gateway: the public HTTP and WebSocket API of the services.", no_args_is_help=True
)
server_command(
    app,
    "serve",
    GatewaySettings,
    "ase_serving.gateway",
    "ASE_GATEWAY",
    "Serve every service schema of the config centre over HTTP (once) and WebSocket (session).",
    _EPILOG,
)
