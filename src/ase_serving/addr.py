"""Network addresses written one way: ``host:port``, with brackets around an IPv6 host."""

from __future__ import annotations


def host_port(host: str, port: int) -> str:
    """``127.0.0.1:2392``, ``[::1]:2392`` (a host already in brackets keeps them)."""
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url(scheme: str, host: str, port: int) -> str:
    """``http://127.0.0.1:2390``, ``http://[::1]:2390``."""
    return f"{scheme}://{host_port(host, port)}"
