"""Typed settings of one loader (from ase.toml and the flags of ``asectl loader run``; the
variables ``ASE_LOADER_ADVERTISE`` and ``ASE_LOADER_EXEC``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoaderSettings:
    """Everything ``serve()`` needs; ``ase_serving.loader.project`` builds it from a project."""

    project_dir: Path
    service: str
    version: str = "1.0.0"
    #: "once" and/or "session"; empty = whatever wrapper.py defines.
    modes: frozenset[str] = frozenset()
    workers: int = 1
    lic: int = 1
    #: Preferred concurrency of the whole loader, reported to the LB; None = workers x lic.
    lic_best: int | None = None
    host: str = "127.0.0.1"
    port: int = 0  # 0 = a free port (the gRPC interop port)
    #: The data port (the lean wire the gateways use); None = ``host``. 0 = a free port.
    data_host: str | None = None
    data_port: int = 0
    #: Also listen on a Unix socket, which gateways on this host use instead of TCP.
    data_uds: bool = True
    #: With the Unix socket: each worker listens on one of its own, and gateways on this host
    #: send once calls straight to a worker (one process less per call; see ``loader.worker``).
    direct: bool = True
    #: The cluster's secret: callers of a data port that is not on loopback must prove they know
    #: it. Set by the cluster registrar from the config centre; None = no proof asked.
    secret: bytes | None = None
    #: TLS on the data port: a PEM certificate chain and its key.
    data_tls_cert: Path | None = None
    data_tls_key: Path | None = None
    #: HTTP /metrics and /health; None = off, 0 = a free port.
    metrics_port: int | None = 0
    once_timeout_s: float = 30.0
    read_timeout_s: float = 15.0
    session_timeout_s: float = 180.0
    drain_timeout_s: float = 30.0
    #: sync | async | auto (see host.EngineSession)
    session_results: str = "auto"
    #: The [wrapper] table of ase.toml, values as strings, for wrapperInit.
    wrapper_config: dict[str, str] = field(default_factory=dict)
