"""``python -m ase_serving.gateway``: run the gateway in the foreground (``asectl init`` starts it too).

    python -m ase_serving.gateway [--host 127.0.0.1] [--port 2392] [--workers 1]
                                  [--config ADDRESS] [--account A] [--password P] [--lb HOST:PORT]
                                  [--auth gateway|proxy|off] [--trusted-proxy ADDR ...]

The config centre comes from ``--config``, else from the cluster settings (``asectl setup`` /
``asectl init``, ``ASE_CONFIG_*``). Prints one line when listening:
``gateway serving on http://HOST:PORT``. SIGTERM/SIGINT: exit 0.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ase_serving.addr import announce
from ase_serving.envflags import apply_env
from ase_serving.errors import UserError
from ase_serving.gateway.server import serve
from ase_serving.gateway.settings import DEFAULT_PORT, GatewaySettings
from ase_serving.home import ClusterSettings, ase_home
from ase_serving.lb.strategies import strategy_names
from ase_serving.store import backend_kind


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = GatewaySettings()
    ap = argparse.ArgumentParser(prog="python -m ase_serving.gateway", description="Run the ASE gateway.")
    ap.add_argument("--host", default=d.host, help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any)")
    ap.add_argument("--workers", type=int, default=d.workers, help="worker processes (default 1)")
    ap.add_argument("--config", help="config centre address (default: the cluster settings)")
    ap.add_argument("--account", help="config centre account (default: the cluster settings)")
    ap.add_argument("--password", help="config centre password (default: the cluster settings)")
    ap.add_argument("--project", help="project whose service schemas to serve (default: settings)")
    ap.add_argument("--group", help="group whose service schemas to serve (default: settings)")
    ap.add_argument(
        "--lb",
        help="ask the LB service at HOST:PORT, its lean-wire port (2393; grpc://HOST:PORT: its gRPC "
        "port, 2391) (default: an LB in this process)",
    )
    ap.add_argument("--strategy", default=d.strategy, help=f"in-process LB: {', '.join(strategy_names())}")
    ap.add_argument(
        "--loader-ca",
        default=d.loader_ca,
        help="call loaders' data ports over TLS, trusting this CA file (their --data-tls-cert)",
    )
    ap.add_argument(
        "--transport",
        default=d.transport,
        help="how loaders are called: lean (their data port, the default) or grpc (their interop port)",
    )
    ap.add_argument(
        "--queue-timeout", type=float, default=d.queue_timeout, help="seconds to wait for a licence"
    )
    ap.add_argument("--once-timeout", type=float, default=d.once_timeout, help="seconds a loader may take")
    ap.add_argument(
        "--header-timeout",
        type=float,
        default=d.header_timeout,
        help=f"seconds a client may take to send a request's headers (default {d.header_timeout:g})",
    )
    ap.add_argument(
        "--body-timeout",
        type=float,
        default=d.body_timeout,
        help=f"seconds a client may take to send a request's body (default {d.body_timeout:g})",
    )
    ap.add_argument(
        "--max-connections",
        type=int,
        default=d.max_connections,
        help=f"connections one gateway process takes (default {d.max_connections}; 503 above)",
    )
    ap.add_argument("--max-body", type=int, default=d.max_body, help="largest once body, bytes")
    ap.add_argument("--max-frame", type=int, default=d.max_frame, help="largest session frame, bytes")
    ap.add_argument(
        "--loop",
        default=d.loop,
        choices=("auto", "asyncio", "uvloop"),
        help="event loop (default auto: uvloop where installed)",
    )
    ap.add_argument(
        "--auth",
        default=d.auth,
        choices=("gateway", "proxy", "off"),
        help="who checks callers: gateway (API keys, signatures; default), proxy (a front proxy's "
        "consumer header), off",
    )
    ap.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="with --auth proxy: an address or network of the front proxy (repeatable)",
    )
    ap.add_argument(
        "--consumer-header",
        default=d.consumer_header,
        help=f"with --auth proxy: the header naming the caller's app id (default {d.consumer_header})",
    )
    ap.add_argument(
        "--max-skew", type=float, default=d.max_skew, help="seconds a signature's date may be off (300)"
    )
    ap.add_argument(
        "--public-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name clients reach this gateway by (host or host:port, repeatable): a signature over "
        "another host is refused (default: any host)",
    )
    ap.add_argument(
        "--allow-replays",
        action="store_true",
        help="take a signature more than once within its window (benchmarks only: off is safe)",
    )
    ap.add_argument("--access-log", action="store_true", help="one INFO line per request, with its sid")
    ap.add_argument("--log-level", default=d.log_level, choices=("debug", "info", "warning", "error"))
    apply_env(ap, "ASE_GATEWAY")
    return ap.parse_args(argv)


def settings_from(args: argparse.Namespace) -> GatewaySettings:
    cluster, address, account, password = ClusterSettings.resolve(args.config, args.account, args.password)
    s = GatewaySettings(
        host=args.host,
        port=args.port,
        workers=args.workers,
        config=address,
        account=account,
        password=password,
        lb=args.lb,
        strategy=args.strategy,
        transport=args.transport,
        loader_ca=args.loader_ca,
        queue_timeout=args.queue_timeout,
        once_timeout=args.once_timeout,
        max_body=args.max_body,
        max_frame=args.max_frame,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
        access_log=args.access_log,
        loop=args.loop,
        auth=args.auth,
        trusted_proxies=args.trusted_proxy,
        consumer_header=args.consumer_header,
        max_skew=args.max_skew,
        public_hosts=args.public_host,
        allow_replays=args.allow_replays,
        log_level="info" if args.access_log and args.log_level == "warning" else args.log_level,
    )
    if cluster is not None:
        s.project, s.group = cluster.project, cluster.group
    s.project = args.project or s.project
    s.group = args.group or s.group
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
