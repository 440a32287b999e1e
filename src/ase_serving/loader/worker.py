"""A loader worker process: one loaded wrapper, serving the supervisor's frames (see ``ipc``).

Started by :mod:`ase_serving.loader.pool` as ``python -m ase_serving.loader.worker --fd N --config
JSON``. It loads ``wrapper.py``, runs ``wrapperInit`` and answers READY (or INIT_FAILED), then
``lic + 1`` threads serve frames leader/follower style: a thread takes the read lock, reads one
frame, releases the lock, runs the frame and writes the answer itself, so no frame is handed from
one thread to another. The spare thread keeps DESTROY/FINI moving while every slot runs a call.

The worker ignores SIGINT/SIGTERM: shutdown is the supervisor's call (FINI). When the supervisor
goes away (EOF on the socket) the worker runs ``wrapperFini`` and exits.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, NoReturn

import orjson

from ase_serving import errors, wire
from ase_serving.loader import ipc
from ase_serving.loader.host import EngineHost, SessionState
from ase_serving.protocol.items import DataItem, Result, Status
from ase_serving.wrapper.plugin import PluginError, load_plugin

log = logging.getLogger("ase_serving.loader.worker")


@dataclass
class _Session:
    state: SessionState
    sid: str
    lock: threading.RLock = field(default_factory=threading.RLock)
    caller_done: bool = False  # the caller sent its last frame (status 2)
    sent: int = 0  # result frames sent, for the 0/1/2 status of the next one

    def status_of_next(self, ended: bool) -> int:
        status = Status.END if ended else (Status.BEGIN if self.sent == 0 else Status.CONTINUE)
        self.sent += 1
        return status


class Worker:
    """Runs frames against an :class:`EngineHost`; one instance per worker process."""

    def __init__(self, chan: ipc.BlockingChannel, host: EngineHost, results: str) -> None:
        self.chan = chan
        self.host = host
        self.results = results
        self.sessions: dict[int, _Session] = {}
        self.by_handle: dict[str, int] = {}
        self.stop = threading.Event()
        self.stop_reason = ""
        host.install_callback(self.push)

    # -- thread loop ------------------------------------------------------------------------
    def serve(self, threads: int) -> str:
        """Serve until FINI or EOF; returns the reason ("fini" or "eof")."""
        for i in range(threads):
            threading.Thread(target=self._loop, name=f"ase-worker-{i}", daemon=True).start()
        self.stop.wait()
        return self.stop_reason

    def _loop(self) -> None:
        chan = self.chan
        while not self.stop.is_set():
            with chan.read_lock:
                frame = chan.read()
            if frame is None:
                self._finish("eof")
                return
            try:
                self.dispatch(*frame)
            except OSError:  # the supervisor went away while we answered
                self._finish("eof")
                return

    def _finish(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
        self.stop.set()

    def dispatch(self, op: int, flags: int, call_id: int, code: int, payload: bytes) -> None:
        if op == ipc.OP_ONCE:
            self.once(call_id, payload)
        elif op == ipc.OP_CREATE:
            self.create(call_id, payload)
        elif op == ipc.OP_FRAME:
            self.frame(call_id, payload)
        elif op == ipc.OP_DESTROY:
            self.destroy(call_id)
        elif op == ipc.OP_FINI:
            self._finish("fini")
        else:
            log.error("unknown frame op %d from the supervisor", op)

    # -- once -------------------------------------------------------------------------------
    def once(self, call_id: int, payload: bytes) -> None:
        try:
            result = self.host.once(wire.decode_request(payload))
            out = wire.encode(result)
        except BaseException as exc:  # SystemExit from a wrapper must not kill this thread silently
            result = Result(errors.WRAPPER_EXCEPTION, errors.describe(exc))
            out = wire.error_result(result.code, result.message)
        self.chan.send(ipc.OP_ONCE_DONE, call_id, result.code, out)

    # -- sessions ---------------------------------------------------------------------------
    def create(self, sess_id: int, payload: bytes) -> None:
        sid = ""
        try:
            req = wire.decode_request(payload)
            sid = req.sid
            handle = self.host.create(req)
        except errors.AseError as exc:
            self._ack_exc(sess_id, exc, sid)
            return
        except BaseException as exc:
            self._ack_error(sess_id, errors.WRAPPER_EXCEPTION, errors.describe(exc), sid)
            return
        sess = _Session(SessionState(self.host, handle, self.results), sid)
        self.sessions[sess_id] = sess
        self.by_handle[handle] = sess_id
        if req.items or req.status == Status.END:
            self._run_frame(sess_id, sess, req.status, req.items)
        else:
            self.chan.send(ipc.OP_SESSION_ACK, sess_id, 0)

    def frame(self, sess_id: int, payload: bytes) -> None:
        sess = self.sessions.get(sess_id)
        if sess is None:
            self._ack_exc(sess_id, errors.frame_after_end())
            return
        try:
            msg = wire.decode_frame(payload)
        except Exception as exc:
            self._ack_error(sess_id, errors.SCHEMA_MISMATCH, f"bad session frame: {exc}", sess.sid)
            return
        self._run_frame(sess_id, sess, msg.status, msg.items)

    def _run_frame(self, sess_id: int, sess: _Session, status: int, items: list[DataItem]) -> None:
        with sess.lock:
            if sess.caller_done or sess.state.ended:
                sess.state.ended = True
                self._ack_exc(sess_id, errors.frame_after_end(), sess.sid)
                return
            if status == Status.END:
                sess.caller_done = True
            try:
                out, ended, _wait = sess.state.frame(status, items)
            except errors.AseError as exc:
                sess.state.ended = True
                self._ack_exc(sess_id, exc, sess.sid)
                return
            except BaseException as exc:
                sess.state.ended = True
                self._ack_error(sess_id, errors.WRAPPER_EXCEPTION, errors.describe(exc), sess.sid)
                return
            payload = b""
            if out or ended:
                res = Result(items=out, status=sess.status_of_next(ended), sid=sess.sid)
                payload = wire.encode(res)
            self.chan.send(ipc.OP_SESSION_ACK, sess_id, 0, payload, ipc.FLAG_END if ended else 0)

    def push(self, handle: str, items: list[DataItem], code: int, message: str) -> None:
        """The ``callback`` sink: an async result from any wrapper thread."""
        sess_id = self.by_handle.get(handle)
        sess = self.sessions.get(sess_id) if sess_id is not None else None
        if sess_id is None or sess is None:
            log.warning("callback for unknown or ended session handle %r dropped", handle)
            return
        with sess.lock:
            if sess.state.ended:
                log.warning("callback for session %r after its end dropped", handle)
                return
            if code != 0:
                sess.state.ended = True
                out = wire.error_result(code, message, sess.sid, Status.END)
                self.chan.send(ipc.OP_SESSION_PUSH, sess_id, code, out, ipc.FLAG_END)
                return
            ended = sess.state.push(items)
            res = Result(items=items, status=sess.status_of_next(ended), sid=sess.sid)
            out = wire.encode(res)
            self.chan.send(ipc.OP_SESSION_PUSH, sess_id, 0, out, ipc.FLAG_END if ended else 0)

    def destroy(self, sess_id: int) -> None:
        sess = self.sessions.pop(sess_id, None)
        code = 0
        if sess is not None:
            with sess.lock:
                res = sess.state.destroy()
            code = res.code
            if self.by_handle.get(sess.state.handle) == sess_id:
                del self.by_handle[sess.state.handle]
        self.chan.send(ipc.OP_DESTROYED, sess_id, code)

    def _ack_exc(self, sess_id: int, exc: errors.AseError, sid: str = "") -> None:
        self._ack_error(sess_id, exc.code, exc.message, sid)

    def _ack_error(self, sess_id: int, code: int, message: str, sid: str = "") -> None:
        out = wire.error_result(code, message, sid, Status.END)
        self.chan.send(ipc.OP_SESSION_ACK, sess_id, code, out, ipc.FLAG_END)


def _start(config: dict[str, Any], chan: ipc.BlockingChannel) -> EngineHost | None:
    """Load and init the wrapper; tell the supervisor how it went."""
    modes = config.get("modes") or None
    try:
        plugin = load_plugin(config["project_dir"], modes)
        host = EngineHost(plugin)
        wrapper_config = dict(config.get("wrapper_config", {}))
        # What the loader adds to the [wrapper] table (WRAPPER.md); the project's own keys win.
        wrapper_config.setdefault("ase_worker", str(config["index"]))
        wrapper_config.setdefault("ase_lic", str(config["lic"]))
        host.init(wrapper_config)
    except PluginError as exc:
        chan.send(ipc.OP_INIT_FAILED, 0, errors.WRAPPER_INIT, str(exc).encode())
        return None
    except errors.AseError as exc:
        reason = exc.message if exc.code == errors.WRAPPER_EXCEPTION else f"{exc.message} (code {exc.code})"
        chan.send(ipc.OP_INIT_FAILED, 0, exc.code, reason.encode())
        return None
    except BaseException as exc:
        chan.send(ipc.OP_INIT_FAILED, 0, errors.WRAPPER_INIT, errors.describe(exc).encode())
        return None
    info = {"pid": os.getpid(), "modes": sorted(plugin.modes)}
    chan.send(ipc.OP_READY, 0, 0, orjson.dumps(info))
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
    try:
        host = _start(config, chan)
        if host is None:
            _exit(3)
        worker = Worker(chan, host, config.get("session_results", "auto"))
        reason = worker.serve(int(config["lic"]) + 1)
        code, text = 0, b""
        try:
            host.fini()
        except errors.AseError as exc:
            code, text = exc.code, exc.message.encode()
        if reason == "fini":
            chan.send(ipc.OP_FINI_DONE, 0, code, text)
    except OSError:
        pass  # the supervisor is gone; nothing left to tell
    _exit(0)


def _exit(rc: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    # Wrapper threads (non-daemon ones too) must not keep a finished worker alive.
    os._exit(rc)


if __name__ == "__main__":
    main()
