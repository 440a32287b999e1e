"""``python -m ase_serving.gateway``: run the gateway in the foreground (``asectl init`` starts it too).

    python -m ase_serving.gateway [--host 127.0.0.1] [--port 2392] [--workers 1]
                                  [--config ADDRESS] [--account A] [--password P] [--lb HOST:PORT]
                                  [--auth gateway|proxy|off] [--trusted-proxy ADDR ...]

The flags are the fields of :class:`~ase_serving.gateway.settings.GatewaySettings` made with
``flag()`` (``--help`` lists them, each also an ``ASE_GATEWAY_*`` variable). ``asectl gateway
serve`` takes the same flags and becomes this process (``exec``): the gateway never imports the
command line tool (Typer, Rich), and this entry point stays the thin one containers run.

The config centre comes from ``--config``, else from the cluster settings (``asectl setup`` /
``asectl init``, ``ASE_CONFIG_*``). Prints one line when listening:
``gateway serving on http://HOST:PORT``. SIGTERM/SIGINT: exit 0.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ase_serving.addr import announce
from ase_serving.cluster_settings import ClusterSettings, ase_home
from ase_serving.envflags import parser, values
from ase_serving.errors import UserError
from ase_serving.gateway.server import serve
from ase_serving.gateway.settings import GatewaySettings
from ase_serving.store import backend_kind


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = parser(GatewaySettings, "python -m ase_serving.gateway", "Run the ASE gateway.", "ASE_GATEWAY")
    return ap.parse_args(argv)


def settings_from(args: argparse.Namespace) -> GatewaySettings:
    """The settings of a parsed command line, with the config centre, its credentials, the project
    and the group from the cluster settings where the flags do not name them."""
    given = values(GatewaySettings, args)
    cluster, given["config"], given["account"], given["password"] = ClusterSettings.resolve(
        given["config"], given["account"], given["password"]
    )
    for name in ("project", "group"):
        value = given.pop(name) or (getattr(cluster, name) if cluster is not None else None)
        if value:
            given[name] = value
    if given["access_log"] and given["log_level"] == "warning":
        given["log_level"] = "info"
    s = GatewaySettings(**given)
    s.cache_file = str(ase_home() / "cache" / f"gateway-{s.project}-{s.group}.json")
    return s


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from(args)
        problems = settings.check()
        if problems:
            print(f"error: {'; '.join(problems)}", file=sys.stderr)
            return 2
        if settings.config:
            backend_kind(settings.config)  # a bad address is one clear error, before anything starts
        if not settings.config:
            print(
                "warning: no config centre (no --config and no `asectl setup`): no service will be served",
                file=sys.stderr,
                flush=True,
            )

        def ready(url: str) -> None:
            announce("gateway", url, f"(workers {settings.workers})")

        serve(settings, ready)
    except UserError as exc:  # GatewayError (port taken, bad settings), SettingsError, StoreError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
