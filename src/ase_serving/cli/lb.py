"""``asectl lb serve``: run the LB service in the foreground (what ``python -m ase_serving.lb`` runs;
the flags are :class:`~ase_serving.lb.settings.LbSettings`'s)."""

from __future__ import annotations

import typer

from ase_serving.cli.server_command import server_command
from ase_serving.lb.settings import LbSettings

_EPILOG = """\
Example:

  asectl lb serve --port 2391 --wire-port 2393 --strategy loadMini

Two ports on one Balancer: --port (gRPC, for interop and health checks) and --wire-port (the
lean wire, what a gateway's --lb names). The registry feed comes from --config, else from the
cluster settings; with neither, the LB serves from Report calls only and says so. Every flag
is also an ASE_LB_* variable (a flag given wins). Prints one line when ready, e.g. `lb serving
on 127.0.0.1:2391 (strategy load); lean wire on 127.0.0.1:2393`. SIGTERM or Ctrl-C: exit 0.
The command becomes `python -m ase_serving.lb` with the same flags.
"""

app = typer.Typer(help="The LB service: one load balancer for several gateways.", no_args_is_help=True)
server_command(
    app,
    "serve",
    LbSettings,
    "ase_serving.lb",
    "ASE_LB",
    "Serve a Balancer: picks for gateways, reports from loaders and the registry.",
    _EPILOG,
)
