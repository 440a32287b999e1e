"""Run the gateway on uvicorn: one process, or ``workers`` processes sharing one listening socket.

The socket is bound here, before any worker starts, so that a taken port is one clear error and
port 0 means a free port that the ready line names. Workers are started by uvicorn's supervisor;
each builds its app with :func:`create_app` from the settings in :data:`~.settings.ENV`, and
``PROMETHEUS_MULTIPROC_DIR`` lets ``/metrics`` sum over all of them.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from typing import Any

from ase_serving import addr
from ase_serving.errors import StartupError
from ase_serving.gateway.settings import ENV, GatewaySettings

#: The largest WebSocket message uvicorn accepts (a service's ``max_frame`` is checked below it).
WS_MAX_SIZE = 64 * 1024 * 1024


class GatewayError(StartupError):
    """The gateway cannot start (port taken, bad settings); the message says why."""


def create_app(settings: GatewaySettings | None = None) -> Any:
    """The ASGI app of one gateway process (settings from :data:`ENV` when not given)."""
    from ase_serving.gateway import http
    from ase_serving.gateway.app import GatewayApp
    from ase_serving.gateway.runtime import Gateway

    settings = settings or GatewaySettings.from_env()
    http.TIMEOUTS.header, http.TIMEOUTS.body = settings.header_timeout, settings.body_timeout
    return GatewayApp(Gateway(settings))


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it (Linux): a response written in two parts (head, body) must not
    # wait for the client's delayed ACK (40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise GatewayError(
            f"cannot listen on {addr.host_port(host, port)}: {exc.strerror or exc}; choose another --port"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: GatewaySettings, ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT. ``ready`` gets the base URL once the socket listens."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    problems = settings.check()
    if problems:
        raise GatewayError("; ".join(problems))
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    settings.port = port
    metrics_dir = None
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="ase-gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[ENV] = settings.to_env()
    common: dict[str, Any] = {
        "log_level": settings.log_level,
        # uvicorn's own access log would print query strings, and with them ?apikey= keys.
        "access_log": False,
        # scope["client"] must be the peer itself: --auth proxy trusts a header by that address.
        "proxy_headers": False,
        "ws_max_size": WS_MAX_SIZE,
        "timeout_graceful_shutdown": 10,
        "server_header": False,
        "lifespan": "on",
        "loop": settings.loop,
        # An import string: with several workers uvicorn pickles the config for each process.
        "http": "ase_serving.gateway.http:GatewayHttpProtocol",
        # Connections and requests in progress above it get 503 (uvicorn's limit).
        "limit_concurrency": settings.max_connections,
    }
    try:
        if ready is not None:
            ready(addr.url("http", host, port))
        if settings.workers == 1:
            config = uvicorn.Config(create_app(settings), **common)
            uvicorn.Server(config).run(sockets=[sock])
        else:
            app = "ase_serving.gateway.server:create_app"
            config = uvicorn.Config(app, factory=True, workers=settings.workers, **common)
            Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
