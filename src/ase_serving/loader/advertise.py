"""The address a loader registers in the service registry (and the host of its gRPC port).

**The address registered** must be one that gateways can reach. A loader listening on a wildcard
address (``0.0.0.0``, ``::``) registers, in this order: ``--advertise HOST[:PORT]`` (or
``ASE_LOADER_ADVERTISE``; a port there replaces the listening one, for port mappings); else the
address of this host's interface that routes to the config centre (a UDP socket "connected" to the
config centre's host: no packet is sent); else ``127.0.0.1``. A loader listening on one address
registers that address (unless ``--advertise`` says otherwise).
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from ase_serving.addr import host_port

#: Listening on these means "every interface": not an address a gateway can dial.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def _store_host(address: str) -> tuple[str, int] | None:
    """The first host (and port) a config centre address names, e.g. ``etcd://h1:2379,h2:2379`` -> h1."""
    netloc = urlsplit(address).netloc.rsplit("@", 1)[-1].split(",")[0]
    if not netloc:
        return None
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = netloc.partition(":")
    return host, int(port) if port.isdigit() else 9


def _route_ip(target: tuple[str, int] | None) -> str | None:
    """This host's address on the interface that routes to ``target`` (no packet is sent)."""
    if target is None:
        return None
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(*target, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as s:
            s.connect(sockaddr)
            ip = str(s.getsockname()[0])
    except OSError:
        return None
    return None if ip in WILDCARD_HOSTS else ip


def advertised_address(
    listen_host: str, port: int, store_address: str | None = None, advertise: str | None = None
) -> str:
    """``host:port`` to register for a loader listening on ``listen_host:port`` (see the module doc).

    Blocking (it may resolve the store's host name): call it off the event loop."""
    if advertise:
        if advertise.startswith("["):
            if "]:" in advertise:
                return advertise
            return host_port(advertise, port)
        if advertise.count(":") == 1:
            return advertise
        return host_port(advertise, port)
    if listen_host not in WILDCARD_HOSTS:
        return host_port(listen_host, port)
    host = _route_ip(_store_host(store_address) if store_address else None) or "127.0.0.1"
    return host_port(host, port)
