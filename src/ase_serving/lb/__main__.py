"""``python -m ase_serving.lb``: run the LB service in the foreground (``asectl init`` starts it too).

    python -m ase_serving.lb [--host 127.0.0.1] [--port 2391] [--wire-port 2393] [--strategy load]
                             [--ttl 10] [--config ADDRESS] [--account A] [--password P]

Two ports on one Balancer: ``--port``, gRPC (``ase.lb.v1.Balancer``, for interop and health
checks), and ``--wire-port``, the lean wire (:mod:`ase_serving.lb.lean`) that a gateway's ``--lb``
names. The registry feed comes from ``--config``, else from the cluster settings (``asectl setup`` /
``asectl init``, ``ASE_CONFIG_*``); with neither, the LB serves from Report calls only and says
so. Prints one line when ready: ``lb serving on HOST:PORT (strategy load); lean wire on HOST:PORT``
(the gRPC address first). SIGTERM/SIGINT: exit 0.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ase_serving.addr import announce
from ase_serving.envflags import apply_env
from ase_serving.errors import UserError
from ase_serving.home import ClusterSettings
from ase_serving.lb.lean import DEFAULT_WIRE_PORT
from ase_serving.lb.service import DEFAULT_PORT, LbReady, open_registry, serve
from ase_serving.lb.strategies import strategy_names
from ase_serving.store import Backend


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m ase_serving.lb", description="Run the ASE LB service (the bypass load balancer)."
    )
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"gRPC port (default {DEFAULT_PORT}; 0 = any)"
    )
    ap.add_argument(
        "--wire-port",
        type=int,
        help=f"lean-wire port, the one a gateway's --lb names (default {DEFAULT_WIRE_PORT}, or any "
        "free one when --port is 0; 0 = any)",
    )
    ap.add_argument("--strategy", default="load", help=f"one of {', '.join(strategy_names())} (default load)")
    ap.add_argument("--ttl", type=float, default=10.0, help="drop loaders silent this long, seconds (10)")
    ap.add_argument(
        "--config", help="config centre address to follow the registry of (default: cluster settings)"
    )
    ap.add_argument("--account", help="config centre account (default: cluster settings)")
    ap.add_argument("--password", help="config centre password (default: cluster settings)")
    ap.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    apply_env(ap, "ASE_LB")
    return ap.parse_args(argv)


def _backend(args: argparse.Namespace) -> Backend | None:
    _, address, account, password = ClusterSettings.resolve(args.config, args.account, args.password)
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
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.strategy not in strategy_names():
        print(
            f"error: unknown strategy {args.strategy!r}: use one of {', '.join(strategy_names())}",
            file=sys.stderr,
        )
        return 2
    if args.ttl <= 0:
        print("error: --ttl must be > 0 seconds", file=sys.stderr)
        return 2

    def ready(info: LbReady) -> None:
        announce("lb", info.address, f"(strategy {info.strategy}); lean wire on {info.wire_address}")

    wire_port = args.wire_port
    if wire_port is None:
        wire_port = 0 if args.port == 0 else DEFAULT_WIRE_PORT
    if not 0 <= wire_port <= 65535:
        print(f"error: --wire-port {wire_port} is not 0..65535", file=sys.stderr)
        return 2
    try:
        backend = _backend(args)
        serve(args.host, args.port, args.strategy, args.ttl, backend, ready, wire_port)
    except UserError as exc:  # LbError (port taken, bad config centre address), SettingsError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a Ctrl-C before the signal handlers are in place
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
