"""``python -m ase_serving.lb``: run the LB service in the foreground (``asectl init`` starts it too).

    python -m ase_serving.lb [--host 127.0.0.1] [--port 2391] [--wire-port 2393] [--strategy load]
                             [--ttl 10] [--config ADDRESS] [--account A] [--password P]

The flags are the fields of :class:`~ase_serving.lb.settings.LbSettings` (each also an
``ASE_LB_*`` variable); ``asectl lb serve`` takes the same flags and becomes this process.
Two ports on one Balancer: ``--port``, gRPC (``ase.lb.v1.Balancer``, for interop and health
checks), and ``--wire-port``, the lean wire (:mod:`ase_serving.lb.lean`) that a gateway's ``--lb``
names. The registry feed comes from ``--config``, else from the cluster settings (``asectl setup`` /
``asectl init``, ``ASE_CONFIG_*``); with neither, the LB serves from Report calls only and says
so. Prints one line when ready: ``lb serving on HOST:PORT (strategy load); lean wire on HOST:PORT``
(the gRPC address first). SIGTERM/SIGINT: exit 0.
"""

from __future__ import annotations

import logging
import sys

from ase_serving.addr import announce
from ase_serving.cluster_settings import ClusterSettings
from ase_serving.envflags import parser, values
from ase_serving.errors import UserError
from ase_serving.lb.service import LbReady, open_registry, serve
from ase_serving.lb.settings import LbSettings
from ase_serving.store import Backend


def parse_args(argv: list[str] | None) -> LbSettings:
    ap = parser(
        LbSettings, "python -m ase_serving.lb", "Run the ASE LB service (the bypass load balancer).", "ASE_LB"
    )
    return LbSettings(**values(LbSettings, ap.parse_args(argv)))


def _backend(s: LbSettings) -> Backend | None:
    _, address, account, password = ClusterSettings.resolve(s.config, s.account, s.password)
    if not address:
        print(
            "warning: no cluster set up (no --config and no `asectl setup`): serving from Report calls only",
            file=sys.stderr,
            flush=True,
        )
        return None
    backend = open_registry(address, account, password)
    if backend.registry is None:
        print(
            f"warning: {address} has no registry ({backend.kind}): serving from Report calls only",
            file=sys.stderr,
            flush=True,
        )
    return backend


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    problems = settings.check()
    if problems:
        print(f"error: {'; '.join(problems)}", file=sys.stderr)
        return 2

    def ready(info: LbReady) -> None:
        announce("lb", info.address, f"(strategy {info.strategy}); lean wire on {info.wire_address}")

    try:
        backend = _backend(settings)
        serve(settings.host, settings.port, settings.strategy, settings.ttl, backend, ready, settings.wire())
    except UserError as exc:  # LbError (port taken, bad config centre address), SettingsError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a Ctrl-C before the signal handlers are in place
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
