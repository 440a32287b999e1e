"""Run the embedded config centre: one process, one asyncio loop, uvicorn serving :mod:`.api`.

    run_server("127.0.0.1", 2390, Path("~/.ase/configd"), ready=lambda url: print(url))

The data directory holds ``store.db`` (SQLite), ``admin.password`` (0600, written on first start)
and ``lock`` (one server per data directory). SIGTERM/SIGINT stop it cleanly: long polls answer
at once, then the loop ends and :func:`run_server` returns.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO

import uvicorn

from ase_serving import addr
from ase_serving.store.base import StoreError
from ase_serving.store.embedded.api import Centre, create_app
from ase_serving.store.embedded.db import DB_FILE, DEFAULT_HISTORY, KVDB
from ase_serving.store.embedded.roles import SECRET_PREFIXES
from ase_serving.store.embedded.settings import DEFAULT_HOST, DEFAULT_PORT
from ase_serving.store.embedded.throttle import LoginThrottle


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0 = a free port); :class:`StoreError` if taken."""
    try:
        return addr.listen(host, port)
    except ValueError as exc:
        raise StoreError(f"cannot listen on {host}:{port}: {exc}; check --host") from None
    except OSError as exc:
        raise StoreError(
            f"cannot listen on {host}:{port}: {exc.strerror}; "
            "stop what uses that port or pick another with --port"
        ) from None


def _return_big_blocks() -> None:
    """Make glibc give every block of 1 MiB or more back to the system when it is freed.

    A password check runs scrypt, which allocates 16 MiB (in a thread of the default executor).
    glibc's dynamic mmap threshold rises to that size after the first such block is freed, so the
    later ones come from the heap of whichever thread ran them and stay resident there: 16 MiB
    per thread that ever checked a password, a third of the config centre's memory. A fixed
    threshold turns that adjustment off.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc (musl has mallopt as a no-op)
        pass


def _lock(data_dir: Path) -> IO[str]:
    """Hold ``<data dir>/lock`` for the server's life: two servers on one store would each keep
    their own lease deadlines and revision in memory."""
    fh = (data_dir / "lock").open("a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        pid = fh.read().strip() or "?"
        fh.close()
        raise StoreError(
            f"{data_dir} is in use by another config centre (pid {pid}); stop it or pick another --data"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def open_centre(
    data_dir: Path, history: int = DEFAULT_HISTORY, throttle: LoginThrottle | None = None
) -> Centre:
    """Open (or create) the store in ``data_dir``; on first start create ``admin``."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = KVDB(data_dir / DB_FILE, history, latest_only=SECRET_PREFIXES)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the config centre's data in {data_dir}: {exc}") from None
    centre = Centre(db, data_dir, throttle)
    centre.accounts.ensure_admin(data_dir)
    return centre


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, centre: Centre, url: str, ready: Callable[[str], None] | None):
        super().__init__(config)
        self.centre, self.url, self.ready = centre, url, ready
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakers: set[asyncio.Task[None]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started and self.ready is not None:
            self.ready(self.url)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded for uvicorn to re-raise after shutdown: a stopped config centre exits 0.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True
        self.centre.closing = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        task = asyncio.ensure_future(self.centre.notify())
        self._wakers.add(task)
        task.add_done_callback(self._wakers.discard)


async def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    data_dir: Path | None = None,
    ready: Callable[[str], None] | None = None,
    history: int = DEFAULT_HISTORY,
    throttle: LoginThrottle | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or cancellation); ``ready(url)`` is called once listening.

    Raises :class:`StoreError` when the port is taken or the data directory cannot be used."""
    if data_dir is None:
        from ase_serving.files import ase_home

        data_dir = ase_home() / "configd"
    data_dir = data_dir.expanduser()
    _return_big_blocks()
    # 0700: the store holds password hashes (and, later, consumer secrets).
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = _lock(data_dir)
    try:
        sock = bind(host, port)
        try:
            centre = open_centre(data_dir, history, throttle)
            bound = sock.getsockname()[1]
            url = addr.url("http", host, bound)
            config = uvicorn.Config(
                create_app(centre),
                log_config=None,
                access_log=False,
                lifespan="off",
                # No WebSocket route: uvicorn would import websockets (3 MB) for nothing.
                ws="none",
                timeout_graceful_shutdown=5,
            )
            server = _Server(config, centre, url, ready)
            expiry = asyncio.create_task(centre.expire_forever())
            try:
                await server.serve(sockets=[sock])
            finally:
                expiry.cancel()
                await asyncio.gather(expiry, return_exceptions=True)
                centre.db.close()
        finally:
            sock.close()
    finally:
        lock.close()


def run_server(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    data_dir: Path | None = None,
    ready: Callable[[str], None] | None = None,
    history: int = DEFAULT_HISTORY,
    throttle: LoginThrottle | None = None,
) -> None:
    """Blocking :func:`serve` in a new event loop (for ``python -m ase_serving.store.embedded``, which
    ``asectl init`` starts and ``asectl config serve`` becomes)."""
    asyncio.run(serve(host, port, data_dir, ready, history, throttle))
