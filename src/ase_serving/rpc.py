"""What the gRPC servers and clients (loader, LB service) share: binding a port with a clear
error, and the services' names and method paths read from the ``.proto`` (its generated
descriptors), not written out again; no generated stub is needed (``scripts/gen-proto``)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

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


def method_paths(service: ServiceDescriptor) -> dict[str, str]:
    """``{"Once": "/ase.loader.v1.Loader/Once", ...}``: each method's gRPC path, from the .proto."""
    return {m.name: f"/{service.full_name}/{m.name}" for m in service.methods}


Handlers = Mapping[str, "grpc.RpcMethodHandler[Any, Any]"]


def add_service(server: grpc.aio.Server, service: ServiceDescriptor, handlers: Handlers) -> None:
    """Serve ``handlers`` (by method name) as ``service``; every method of the .proto, no other."""
    if set(handlers) != set(method_paths(service)):
        raise ValueError(
            f"handlers {sorted(handlers)} are not the methods of {service.full_name}: "
            f"{sorted(method_paths(service))}"
        )
    table = dict(handlers)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, table),))
    with contextlib.suppress(AttributeError):  # registered methods skip the generic lookup (grpcio >= 1.63)
        server.add_registered_method_handlers(service.full_name, table)  # type: ignore[attr-defined]
