"""Typed settings of the LB service: the one definition of the flags of ``python -m ase_serving.lb``
and ``asectl lb serve``, each also an ``ASE_LB_*`` variable (:mod:`ase_serving.envflags`)."""

from __future__ import annotations

from dataclasses import dataclass

from ase_serving.envflags import flag
from ase_serving.lb.lean import DEFAULT_WIRE_PORT
from ase_serving.lb.strategies import strategy_names

#: The gRPC port (``ase.lb.v1.Balancer``).
DEFAULT_PORT = 2391
_LEVELS = ("debug", "info", "warning", "error")


@dataclass
class LbSettings:
    """One LB service's settings; each field is a flag (``--wire-port``) and a variable
    (``ASE_LB_WIRE_PORT``)."""

    host: str = flag("127.0.0.1", "address to listen on")
    port: int = flag(DEFAULT_PORT, "gRPC port (0 = any)")
    #: None: :data:`DEFAULT_WIRE_PORT`, or any free port when ``port`` is 0 (see :meth:`wire`).
    wire_port: int | None = flag(
        None,
        f"lean-wire port, the one a gateway's --lb names (default {DEFAULT_WIRE_PORT}, or any free "
        "one when --port is 0; 0 = any)",
    )
    strategy: str = flag("load", "how picks are made: load, loadMini, poll (or a registered one)")
    ttl: float = flag(10.0, "drop loaders silent this long, seconds")
    config: str | None = flag(
        None, "config centre address to follow the registry of (default: the cluster settings)"
    )
    account: str | None = flag(None, "config centre account (default: the cluster settings)")
    password: str | None = flag(None, "config centre password (default: the cluster settings)")
    log_level: str = flag("warning", "log level", choices=_LEVELS)

    def wire(self) -> int:
        """The lean-wire port to listen on."""
        if self.wire_port is None:
            return 0 if self.port == 0 else DEFAULT_WIRE_PORT
        return self.wire_port

    def check(self) -> list[str]:
        """Every problem with these values (empty when fine)."""
        out = []
        if self.strategy not in strategy_names():
            out.append(f"unknown strategy {self.strategy!r}: use one of {', '.join(strategy_names())}")
        if self.ttl <= 0:
            out.append("--ttl must be > 0 seconds")
        for name, port in (("--port", self.port), ("--wire-port", self.wire())):
            if not 0 <= port <= 65535:
                out.append(f"{name} {port} is not 0..65535")
        return out
