"""``python -m ase_serving.store.embedded [--host H] [--port P] [--data DIR]``: run the config centre.

``--login-failures N --login-backoff S --login-backoff-max S`` tune how failed logins are slowed
per client (see :mod:`.throttle`).

Prints one line when listening (``config centre serving on http://HOST:PORT (data DIR)``);
SIGTERM/SIGINT stop it with exit 0; a taken port or unusable data directory exits 1 with a
one-line ``error: ...`` on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ase_serving.addr import announce
from ase_serving.files import ase_home
from ase_serving.store.base import StoreError
from ase_serving.store.embedded.db import DEFAULT_HISTORY
from ase_serving.store.embedded.server import DEFAULT_HOST, DEFAULT_PORT, run_server
from ase_serving.store.embedded.throttle import BASE, CAP, FORGET, FREE, LoginThrottle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ase_serving.store.embedded", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="0 = a free port (default %(default)s)"
    )
    parser.add_argument("--data", type=Path, default=None, help="data directory (default $ASE_HOME/configd)")
    parser.add_argument(
        "--history", type=int, default=DEFAULT_HISTORY, help="revisions of events kept for watches"
    )
    parser.add_argument(
        "--login-failures",
        type=int,
        default=FREE,
        help="failed logins in a row a client may have before it is slowed down (default %(default)s)",
    )
    parser.add_argument(
        "--login-backoff",
        type=float,
        default=BASE,
        help="seconds a client is then refused, doubled by each further failure (default %(default)s)",
    )
    parser.add_argument(
        "--login-backoff-max",
        type=float,
        default=CAP,
        help="the longest of those waits (default %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        throttle = LoginThrottle(
            args.login_failures,
            args.login_backoff,
            args.login_backoff_max,
            forget=max(FORGET, args.login_backoff_max),
        )
    except ValueError as exc:
        parser.error(f"--login-*: {exc}")
    data_dir: Path = (args.data or ase_home() / "configd").expanduser().resolve()

    def ready(url: str) -> None:
        announce("config centre", url, f"(data {data_dir})")

    try:
        run_server(args.host, args.port, data_dir, ready=ready, history=args.history, throttle=throttle)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the server took over the signals
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
