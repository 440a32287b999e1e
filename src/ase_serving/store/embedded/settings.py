"""Typed settings of the embedded config centre: the one definition of the flags of ``python -m
ase_serving.store.embedded`` and ``asectl config serve``, each also an ``ASE_CONFIGD_*`` variable
(:mod:`ase_serving.envflags`).

No server here (no uvicorn, no Starlette): ``asectl config serve`` builds its options from these
fields, then becomes ``python -m ase_serving.store.embedded``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ase_serving.envflags import flag
from ase_serving.files import ase_home
from ase_serving.store.embedded.db import DEFAULT_HISTORY
from ase_serving.store.embedded.throttle import BASE, CAP, FORGET, FREE, LoginThrottle

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2390
#: ``--login-backoff`` is ``ASE_CONFIGD_LOGIN_BACKOFF`` (``ASE_CONFIG_*`` is the cluster's address).
ENV_PREFIX = "ASE_CONFIGD"
MODULE = "ase_serving.store.embedded"


@dataclass
class EmbeddedSettings:
    """One embedded config centre's settings; each field is a flag (``--login-failures``) and a
    variable (``ASE_CONFIGD_LOGIN_FAILURES``)."""

    host: str = flag(DEFAULT_HOST, "address to listen on")
    port: int = flag(DEFAULT_PORT, "port (0 = a free one)")
    #: None: ``$ASE_HOME/configd`` (see :meth:`data_dir`).
    data: str | None = flag(None, "data directory (default $ASE_HOME/configd)", metavar="DIR")
    history: int = flag(DEFAULT_HISTORY, "revisions of events kept for watches")
    login_failures: int = flag(FREE, "failed logins in a row a client may have before it is slowed down")
    login_backoff: float = flag(BASE, "seconds a client is then refused, doubled by each further failure")
    login_backoff_max: float = flag(CAP, "the longest of those waits, seconds")

    def data_dir(self) -> Path:
        """The data directory, absolute (``--data``, else ``$ASE_HOME/configd``)."""
        return (Path(self.data) if self.data else ase_home() / "configd").expanduser().resolve()

    def check(self) -> list[str]:
        """Every problem with these values (empty when fine)."""
        out = []
        if self.history < 1:
            out.append("--history must be >= 1")
        if self.login_failures < 1:
            out.append("--login-failures must be >= 1")
        if self.login_backoff <= 0:
            out.append("--login-backoff must be > 0 seconds")
        elif self.login_backoff_max < self.login_backoff:
            out.append("--login-backoff-max must be >= --login-backoff")
        return out

    def throttle(self) -> LoginThrottle:
        """The login throttle of these values (:meth:`check` them first)."""
        return LoginThrottle(
            self.login_failures,
            self.login_backoff,
            self.login_backoff_max,
            forget=max(FORGET, self.login_backoff_max),
        )
