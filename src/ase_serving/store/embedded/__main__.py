"""``python -m ase_serving.store.embedded``: run the embedded config centre in the foreground.

    python -m ase_serving.store.embedded [--host 127.0.0.1] [--port 2390] [--data DIR] [--history N]
                                         [--login-failures N] [--login-backoff S] [--login-backoff-max S]

The flags are the fields of :class:`~ase_serving.store.embedded.settings.EmbeddedSettings` (each
also an ``ASE_CONFIGD_*`` variable); ``asectl config serve`` takes the same flags and becomes this
process, and ``asectl init`` starts it. ``--login-*`` tune how failed logins are slowed per client
(see :mod:`.throttle`).

Prints one line when listening (``config centre serving on http://HOST:PORT (data DIR)``);
SIGTERM/SIGINT stop it with exit 0; a taken port or unusable data directory exits 1, a bad flag
value 2, with a one-line ``error: ...`` on stderr.
"""

from __future__ import annotations

import sys

from ase_serving.addr import announce
from ase_serving.envflags import parser, values
from ase_serving.store.base import StoreError
from ase_serving.store.embedded.server import run_server
from ase_serving.store.embedded.settings import ENV_PREFIX, MODULE, EmbeddedSettings


def parse_args(argv: list[str] | None) -> EmbeddedSettings:
    ap = parser(EmbeddedSettings, f"python -m {MODULE}", "Run the embedded config centre.", ENV_PREFIX)
    return EmbeddedSettings(**values(EmbeddedSettings, ap.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    problems = settings.check()
    if problems:
        print(f"error: {'; '.join(problems)}", file=sys.stderr)
        return 2
    data_dir = settings.data_dir()

    def ready(url: str) -> None:
        announce("config centre", url, f"(data {data_dir})")

    try:
        run_server(
            settings.host,
            settings.port,
            data_dir,
            ready=ready,
            history=settings.history,
            throttle=settings.throttle(),
        )
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the server took over the signals
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
