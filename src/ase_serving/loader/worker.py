"""A loader worker process: one loaded wrapper, serving the supervisor's frames (see ``ipc``).

Started by :mod:`ase_serving.loader.pool` as ``python -m ase_serving.loader.worker --fd N --config
JSON``. It loads ``wrapper.py``, runs ``wrapperInit`` and answers READY (or INIT_FAILED), then
serves frames (:class:`~ase_serving.loader.worker_loop.Worker`: ``lic + 1`` threads, one reader at
a time) from the supervisor's socketpair and, with ``direct``, from gateways on this host on the
worker's own Unix socket.

The worker ignores SIGINT/SIGTERM: shutdown is the supervisor's call (FINI). When the supervisor
goes away (EOF on the socket) the worker runs ``wrapperFini`` and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import os
import signal
import socket
import sys
from typing import Any, NoReturn

import orjson

from ase_serving import errors, wire
from ase_serving.loader import ipc
from ase_serving.loader.host import EngineHost
from ase_serving.loader.worker_loop import Worker
from ase_serving.wrapper.plugin import PluginError, load_plugin

log = logging.getLogger("ase_serving.loader.worker")


def _start(config: dict[str, Any], chan: ipc.BlockingChannel) -> EngineHost | None:
    """Load and init the wrapper; tell the supervisor how it went."""
    modes = config.get("modes") or None
    try:
        plugin = load_plugin(config["project_dir"], modes)
        host = EngineHost(plugin)
        wrapper_config = dict(config.get("wrapper_config", {}))
        # What the loader adds to the [wrapper] table (README, "The wrapper contract"); the project's win.
        wrapper_config.setdefault("ase_worker", str(config["index"]))
        wrapper_config.setdefault("ase_lic", str(config["lic"]))
        host.init(wrapper_config)
    except PluginError as exc:
        chan.send(wire.OP_INIT_FAILED, 0, errors.WRAPPER_INIT, str(exc).encode())
        return None
    except errors.AseError as exc:
        reason = exc.message if exc.code == errors.WRAPPER_EXCEPTION else f"{exc.message} (code {exc.code})"
        chan.send(wire.OP_INIT_FAILED, 0, exc.code, reason.encode())
        return None
    except BaseException as exc:
        chan.send(wire.OP_INIT_FAILED, 0, errors.WRAPPER_INIT, errors.describe(exc).encode())
        return None
    info = {"pid": os.getpid(), "modes": sorted(plugin.modes)}
    chan.send(wire.OP_READY, 0, 0, orjson.dumps(info))
    return host


def main(argv: list[str] | None = None) -> NoReturn:
    parser = argparse.ArgumentParser(prog="ase_serving.loader.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    config: dict[str, Any] = orjson.loads(args.config)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    faulthandler.enable()  # a segfault in an engine prints where it happened
    logging.basicConfig(
        level=logging.WARNING,
        format=f"worker {config['index']} (pid {os.getpid()}): %(levelname)s %(message)s",
    )
    sock = socket.socket(fileno=args.fd)
    chan = ipc.BlockingChannel(sock)
    listener = _listen(config.get("direct"))
    try:
        host = _start(config, chan)
        if host is None:
            _exit(3)
        lic = int(config["lic"])
        worker = Worker(chan, host, config.get("session_results", "auto"), lic, listener)
        reason = worker.serve(lic + 1)
        code, text = 0, b""
        try:
            host.fini()
        except errors.AseError as exc:
            code, text = exc.code, exc.message.encode()
        if reason == "fini":
            chan.send(wire.OP_FINI_DONE, 0, code, text)
    except OSError:
        pass  # the supervisor is gone; nothing left to tell
    _exit(0)


def _listen(path: str | None) -> socket.socket | None:
    """The worker's direct socket (gateways on this host call it), or None without one."""
    if not path:
        return None
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(64)
    except OSError as exc:
        log.warning("no direct socket at %s (%s): gateways reach this worker through the loader", path, exc)
        return None
    return listener


def _exit(rc: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    # Wrapper threads (non-daemon ones too) must not keep a finished worker alive.
    os._exit(rc)


if __name__ == "__main__":
    main()
