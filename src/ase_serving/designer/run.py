"""Serve the API design page on a local port until Ctrl-C (``asectl api web``)."""

from __future__ import annotations

import secrets
import signal
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from ase_serving import addr
from ase_serving.designer.remote import Caller
from ase_serving.designer.server import Project, create_app
from ase_serving.errors import StartupError

__all__ = ["PageError", "serve"]


class PageError(StartupError):
    """The page cannot be served (its port is taken, its host unknown)."""


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded for uvicorn to raise again after shutting down: Ctrl-C ends the page with 0.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def _bind(host: str, port: int) -> socket.socket:
    try:
        return addr.listen(host, port, backlog=64)
    except ValueError as exc:
        raise PageError(f"cannot listen on {host}:{port}: {exc}; check --host") from None
    except OSError as exc:
        raise PageError(
            f"cannot listen on {addr.host_port(host, port)}: {exc.strerror or exc}; choose another --port"
        ) from None


def serve(project: Project, host: str, port: int, caller: Caller, ready: Callable[[str], None]) -> None:
    """Serve the page of ``project``; ``ready(url)`` gets the URL with its token once the port
    listens. Returns when SIGINT or SIGTERM stopped it."""
    token = secrets.token_urlsafe(24)
    sock = _bind(host, port)
    try:
        url = f"{addr.url('http', host, sock.getsockname()[1])}/?token={token}"
        config = uvicorn.Config(
            create_app(project, token, caller, host),
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            server_header=False,
            timeout_graceful_shutdown=3,
        )
        ready(url)
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()
