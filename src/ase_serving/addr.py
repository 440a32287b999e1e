"""Network addresses written and read one way (``host:port``, brackets around an IPv6 host), and
the one ready line every server prints when it listens (``cluster.local`` and the tests read it)."""

from __future__ import annotations

import socket
import sys


def host_port(host: str, port: int) -> str:
    """``127.0.0.1:2392``, ``[::1]:2392`` (a host already in brackets keeps them)."""
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(text: str) -> tuple[str, int]:
    """``127.0.0.1:2392`` -> ``("127.0.0.1", 2392)``, ``[::1]:2392`` -> ``("::1", 2392)``; a
    ValueError when there is no host or no port of digits."""
    host, sep, port = text.rpartition(":")
    if not (sep and host and port.isdigit()):
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def url(scheme: str, host: str, port: int) -> str:
    """``http://127.0.0.1:2390``, ``http://[::1]:2390``."""
    return f"{scheme}://{host_port(host, port)}"


def serving_line(what: str, address: str, details: str = "") -> str:
    """``gateway serving on http://127.0.0.1:2392 (workers 1)``: ``what``, the address, details."""
    return f"{what} serving on {address}{f' {details}' if details else ''}"


def announce(what: str, address: str, details: str = "", *after: str) -> None:
    """Print :func:`serving_line` (then ``after``, a line each) to stdout at once."""
    sys.stdout.write("".join(f"{line}\n" for line in (serving_line(what, address, details), *after)))
    sys.stdout.flush()


def listen(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one).

    Raises :class:`ValueError` for a host that does not resolve and :class:`OSError` (with
    ``strerror``) for a port that cannot be bound; callers word those for their own option names.
    """
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ValueError(exc.strerror) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock
