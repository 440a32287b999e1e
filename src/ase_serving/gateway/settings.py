"""Typed settings of one gateway: the one definition of the flags of ``python -m ase_serving.gateway``
and ``asectl gateway serve``, each also an ``ASE_GATEWAY_*`` variable (:mod:`ase_serving.envflags`).

Per-service values in a service schema (``meta.queue_timeout``, ``max_body``, ...) win over the
defaults here. Worker processes get the settings as one JSON environment variable
(:data:`ENV`), so that a password never shows on a command line.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any

import orjson

from ase_serving.addr import split_host_port
from ase_serving.envflags import flag
from ase_serving.store.base import DEFAULT_GROUP, DEFAULT_PROJECT

_PUBLIC_HOST = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")

DEFAULT_PORT = 2392
ENV = "ASE_GATEWAY_SETTINGS"
MIB = 1024 * 1024


@dataclass
class GatewaySettings:
    """One gateway's settings. A field made with :func:`~ase_serving.envflags.flag` is also a flag of
    ``python -m ase_serving.gateway`` and ``asectl gateway serve``, and an ``ASE_GATEWAY_*`` variable."""

    host: str = flag("127.0.0.1", "address to listen on")
    port: int = flag(DEFAULT_PORT, "port (0 = any)")
    workers: int = flag(1, "worker processes")
    #: The config centre (schemas, registry); None serves nothing but /health, /docs, /metrics.
    config: str | None = flag(None, "config centre address (default: the cluster settings)")
    account: str | None = flag(None, "config centre account (default: the cluster settings)")
    password: str | None = flag(None, "config centre password (default: the cluster settings)")
    project: str = flag(
        DEFAULT_PROJECT, "project whose service schemas to serve (default: the cluster settings)", unset=True
    )
    group: str = flag(
        DEFAULT_GROUP, "group whose service schemas to serve (default: the cluster settings)", unset=True
    )
    #: host:port of an LB service's lean-wire port to ask (``grpc://host:port``: its gRPC port);
    #: None = a Balancer in this process fed by the registry.
    lb: str | None = flag(
        None,
        "ask the LB service at HOST:PORT, its lean-wire port (2393; grpc://HOST:PORT: its gRPC "
        "port, 2391) (default: an LB in this process)",
    )
    #: The in-process Balancer's strategy: loadMini counts exactly what this gateway holds.
    strategy: str = flag(
        "loadMini", "the in-process LB's strategy: load, loadMini, poll (or a registered one)"
    )
    #: A CA file: call loaders' data ports over TLS, trusting this CA (their ``--data-tls-cert``).
    loader_ca: str | None = flag(
        None, "call loaders' data ports over TLS, trusting this CA file (their --data-tls-cert)"
    )
    #: How loaders are called: ``lean`` (their data port) or ``grpc`` (see gateway/transport.py).
    transport: str = flag(
        "lean", "how loaders are called: lean (their data port) or grpc (their interop port)"
    )
    lb_ttl: float = 10.0
    #: Seconds a once request (or a session's start) waits for a free licence before 10110.
    queue_timeout: float = flag(5.0, "seconds to wait for a licence")
    #: Seconds a loader may take for a once request (10114 after).
    once_timeout: float = flag(60.0, "seconds a loader may take")
    read_timeout: float = 15.0
    session_timeout: float = 180.0
    #: Largest body of a once request / largest session frame, bytes (10413 above).
    max_body: int = flag(16 * MIB, "largest once body, bytes")
    max_frame: int = flag(4 * MIB, "largest session frame, bytes")
    #: Seconds a 10110 answer tells the client to wait (``Retry-After``).
    retry_after: int = 1
    #: Seconds a client may take to send a request's headers (408 and closed after), and its body.
    header_timeout: float = flag(10.0, "seconds a client may take to send a request's headers")
    body_timeout: float = flag(60.0, "seconds a client may take to send a request's body")
    #: Open connections (and requests in progress) one gateway process takes; 503 above it.
    max_connections: int = flag(4096, "connections one gateway process takes (503 above)")
    #: Where the last known config is kept for starts while the config centre is down.
    cache_file: str | None = None
    #: One log line per request (with its sid) at INFO.
    access_log: bool = flag(False, "one INFO line per request, with its sid")
    log_level: str = flag("warning", "log level", choices=("debug", "info", "warning", "error"))
    #: uvicorn's event loop: auto (uvloop where it is installed, else asyncio), uvloop or asyncio.
    loop: str = flag(
        "auto", "event loop (auto: uvloop where installed)", choices=("auto", "asyncio", "uvloop")
    )
    #: Who checks callers: "gateway" (API keys and signatures of the config centre's consumers),
    #: "proxy" (a front proxy did; its consumer header is believed from trusted_proxies), "off".
    auth: str = flag(
        "gateway",
        "who checks callers: gateway (API keys, signatures), proxy (a front proxy's consumer header), off",
        choices=("gateway", "proxy", "off"),
    )
    trusted_proxies: list[str] = flag(
        [],
        "with --auth proxy: an address or network of the front proxy (repeatable)",
        option="--trusted-proxy",
        metavar="ADDR",
    )
    consumer_header: str = flag(
        "X-Consumer-Custom-ID", "with --auth proxy: the header naming the caller's app id"
    )
    #: Seconds a signed request's date may be off the gateway's clock.
    max_skew: float = flag(300.0, "seconds a signature's date may be off")
    #: The names clients reach this gateway by (``name`` or ``name:port``): a signature over
    #: another host is refused. Empty: any host (the Host header the request came with).
    public_hosts: list[str] = flag(
        [],
        "a name clients reach this gateway by (host or host:port, repeatable): a signature over "
        "another host is refused (default: any host)",
        option="--public-host",
        metavar="NAME",
    )
    #: Take a signature more than once within its window (for benchmarks that replay one request).
    allow_replays: bool = flag(
        False, "take a signature more than once within its window (benchmarks only: off is safe)"
    )

    def check(self) -> list[str]:
        """Every problem with these values (empty when fine)."""
        from ase_serving.lb.strategies import strategy_names

        out = []
        if self.strategy not in strategy_names():
            out.append(f"unknown strategy {self.strategy!r}: use one of {', '.join(strategy_names())}")
        if not 0 <= self.port <= 65535:
            out.append(f"port {self.port} is not 0..65535")
        if self.workers < 1:
            out.append(f"workers must be >= 1, not {self.workers}")
        if self.max_connections < 1:
            out.append(f"max_connections must be >= 1, not {self.max_connections}")
        for name in (
            "queue_timeout",
            "once_timeout",
            "read_timeout",
            "session_timeout",
            "lb_ttl",
            "header_timeout",
            "body_timeout",
        ):
            if getattr(self, name) <= 0:
                out.append(f"{name} must be > 0 seconds, not {getattr(self, name)}")
        if self.loop not in ("auto", "asyncio", "uvloop"):
            out.append(f"loop must be auto, asyncio or uvloop, not {self.loop!r}")
        if self.loader_ca and not os.path.isfile(self.loader_ca):
            out.append(
                f"--loader-ca {self.loader_ca}: no such file (the PEM file of the CA that signed "
                "the loaders' certificates)"
            )
        if self.lb is not None and not _host_port(self.lb.removeprefix("grpc://")):
            out.append(f"lb must be HOST:PORT (or grpc://HOST:PORT), not {self.lb!r}")
        if self.transport not in ("lean", "grpc"):
            out.append(f"transport must be lean or grpc, not {self.transport!r}")
        out += self._check_auth()
        for name in ("max_body", "max_frame"):
            if getattr(self, name) <= 0:
                out.append(f"{name} must be > 0 bytes, not {getattr(self, name)}")
        return out

    def _check_auth(self) -> list[str]:
        import ipaddress

        from ase_serving.gateway.auth import MODES

        out = []
        if self.auth not in MODES:
            out.append(f"auth must be one of {', '.join(MODES)}, not {self.auth!r}")
        if self.auth == "proxy" and not self.trusted_proxies:
            out.append("auth proxy needs --trusted-proxy: the addresses (or networks) of the front proxy")
        for net in self.trusted_proxies:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                out.append(f"trusted proxy {net!r} is not an IP address or network (10.0.0.0/8, ::1)")
        if self.max_skew <= 0:
            out.append(f"max_skew must be > 0 seconds, not {self.max_skew}")
        for host in self.public_hosts:
            if not _PUBLIC_HOST.fullmatch(host):
                out.append(
                    f"public host {host!r} is not a host name or address with an optional port "
                    "(api.example.com, 10.0.0.5:2392, [::1]:2392)"
                )
        return out

    def to_env(self) -> str:
        return orjson.dumps(dataclasses.asdict(self)).decode()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> GatewaySettings:
        """The settings a parent process left in :data:`ENV` (defaults when unset)."""
        raw = (environ if environ is not None else os.environ).get(ENV)
        if not raw:
            return cls()
        doc: dict[str, Any] = orjson.loads(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


def _host_port(address: str) -> bool:
    try:
        split_host_port(address)
    except ValueError:
        return False
    return True
