"""What the gRPC servers (loader, LB service) share: binding a port with a clear error."""

from __future__ import annotations

import grpc

from ase_serving.addr import host_port
from ase_serving.errors import StartupError


class BindError(StartupError):
    """The port cannot be listened on; the message names the address and the likely cause."""


def bind(server: grpc.aio.Server, host: str, port: int, who: str) -> int:
    """Listen on ``host:port`` (0 = a free port) and return the port bound.

    ``who`` names the kind of server ("loader", "LB") in the hint about a taken port. Create the
    server with ``("grpc.so_reuseport", 0)`` so that a second server on the port fails here
    instead of sharing it silently."""
    target = host_port(host, port)
    try:
        bound = server.add_insecure_port(target)
    except RuntimeError as exc:
        raise BindError(f"cannot listen on {target}: {exc} (is another {who} using the port?)") from None
    if not bound:
        raise BindError(f"cannot listen on {target} (is another {who} using the port?)")
    return bound
