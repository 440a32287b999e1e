"""A loader worker process: one loaded wrapper, serving the supervisor's frames (see ``ipc``).

Started by :mod:`ase_serving.loader.pool` as ``python -m ase_serving.loader.worker --fd N --config
JSON``. It loads ``wrapper.py``, runs ``wrapperInit`` and answers READY (or INIT_FAILED), then
serves frames with ``lic + 1`` threads, of which one at a time is the *reader*:

* the reader reads what the socket holds, runs the frames itself one after the other (no frame
  is handed to another thread: no wake-up, no GIL hand-over per call) and sends their answers
  together before it reads again;
* the other threads are parked. A watchdog looks every millisecond: when the reader has been in
  one call for longer than that (a wrapper that blocks: sleep, I/O, C code that releases the GIL),
  it wakes a parked thread, which becomes the reader, so up to ``lic`` calls run at once; the old
  reader parks when its call returns. Fast wrappers never pay for a thread switch; wrappers that
  block keep their concurrency. The spare thread keeps DESTROY/FINI moving while every slot runs
  a call.

Calls come from the supervisor's socketpair (relayed by the loader front) and from gateways on
this host connected to the worker's own socket (``ipc.Mux`` reads both); the answers go back where
the call came from, and both kinds share the ``lic`` slots. A session's create, frames and destroy
run in the order they came, one at a time (``Worker._run``).

The worker ignores SIGINT/SIGTERM: shutdown is the supervisor's call (FINI). When the supervisor
goes away (EOF on the socket) the worker runs ``wrapperFini`` and exits.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import faulthandler
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import orjson

from ase_serving import errors, wire
from ase_serving.loader import ipc
from ase_serving.loader.host import EngineHost, EngineSession
from ase_serving.protocol.items import DataItem, Result, Status
from ase_serving.wrapper.plugin import PluginError, load_plugin

log = logging.getLogger("ase_serving.loader.worker")

_FULL = wire.error_result(errors.NO_LICENCE, "every engine licence of this loader is busy")
_DRAINING = wire.error_result(errors.NO_LOADER, "loader is draining")
#: Seconds between two OP_STATS while direct calls come.
_STATS_EVERY_S = 0.1
#: The most a worker told to stop waits for its direct once calls before wrapperFini.
_FINI_WAIT_S = 30.0


class _Session:
    """One session in this worker, of the supervisor or of a direct caller: its answers go back
    on ``chan`` under the caller's ``call_id``.

    Its caller's operations (create, frames, destroy) run in the order they came, one at a time
    (:meth:`Worker._run`): a frame that arrives while the session runs another waits in
    :attr:`jobs`, and so does a destroy that arrives while the create still runs."""

    __slots__ = (
        "call_id",
        "caller_done",
        "chan",
        "code",
        "jobs",
        "lock",
        "running",
        "sent",
        "sid",
        "slot",
        "state",
    )

    def __init__(self, chan: ipc.BlockingChannel, call_id: int) -> None:
        self.chan = chan
        self.call_id = call_id
        self.state: EngineSession | None = None  # set once wrapperCreate returned
        self.sid = ""
        #: Guards the state against a wrapper thread's callback (:meth:`Worker.push`).
        self.lock = threading.RLock()
        self.caller_done = False  # the caller sent its last frame (status 2)
        self.sent = 0  # result frames sent, for the 0/1/2 status of the next one
        self.code = 0  # the code of the last answer (the session's, once it ended)
        self.slot = True  # holds a licence slot until destroyed
        self.jobs: collections.deque[Callable[[], None]] = collections.deque()
        self.running = False

    def status_of_next(self, ended: bool) -> int:
        status = Status.END if ended else (Status.BEGIN if self.sent == 0 else Status.CONTINUE)
        self.sent += 1
        return status

    def send(self, op: int, code: int, payload: bytes = b"", end: bool = False) -> None:
        if end:
            self.code = code
        self.chan.send(op, self.call_id, code, payload, wire.FLAG_END if end else 0)


class Worker:
    """Runs frames against an :class:`EngineHost`; one instance per worker process."""

    def __init__(
        self,
        chan: ipc.BlockingChannel,
        host: EngineHost,
        results: str,
        lic: int = 1,
        listener: socket.socket | None = None,
    ) -> None:
        self.chan = chan
        self.host = host
        self.results = results
        self.lic = lic
        #: Open sessions by (the caller's channel, its session id).
        self.sessions: dict[tuple[ipc.BlockingChannel, int], _Session] = {}
        self.by_handle: dict[str, _Session] = {}
        self._sessions_lock = threading.Lock()
        self.stop = threading.Event()
        self.stop_reason = ""
        self.mux = ipc.Mux(chan, listener, self._greet)
        #: Slots taken (once calls running, whoever sent them, and open sessions): at ``lic``
        #: the next call gets 10110. The supervisor admits what it relays, but direct callers
        #: share the slots, so the worker has the last word.
        self._busy = 0
        self._direct_busy = 0
        self._slots = threading.Condition()
        self.draining = False
        #: Direct calls since the last OP_STATS: results by code, and their seconds.
        self._codes: dict[int, int] = {}
        self._session_codes: dict[int, int] = {}
        self._seconds: list[float] = []
        self._stats_lock = threading.Lock()
        self._stats_sent = -1.0
        self._reported_busy = 0
        self._held = threading.local()
        host.install_callback(self.push)

    # -- threads ------------------------------------------------------------------------------
    def serve(self, threads: int) -> str:
        """Serve until FINI or EOF; returns the reason ("fini" or "eof")."""
        self._threads = threads
        self._parked = 0
        self._count_lock = threading.Lock()
        self._wake = threading.Semaphore(0)
        self._reader: int | None = None
        self._call = 0  # calls run by readers so far
        self._running = 0  # the number of the call the reader runs now, 0 = none
        self._active = threading.Event()
        self._active.set()
        for i in range(threads):
            threading.Thread(target=self._serve, args=(i == 0,), name=f"ase-worker-{i}", daemon=True).start()
        threading.Thread(target=self._watch, name="ase-worker-watch", daemon=True).start()
        self.stop.wait()
        self._active.set()
        for _ in range(threads):
            self._wake.release()
        self.mux.stop_listening()
        # Direct once calls still running finish before wrapperFini (the supervisor waited for its
        # own). Direct sessions had the loader's drain time (it counts their slots): they end now.
        with self._slots:
            self._slots.wait_for(lambda: self._direct_busy <= self._direct_sessions(), timeout=_FINI_WAIT_S)
        self.end_direct_sessions()
        self._send_stats()
        return self.stop_reason

    def _serve(self, first: bool) -> None:
        me = threading.get_ident()
        if first:
            self._reader = me
        mux = self.mux
        frames = mux.frames
        while not self.stop.is_set():
            if self._reader != me:
                with self._count_lock:
                    self._parked += 1
                self._wake.acquire()
                with self._count_lock:
                    self._parked -= 1
                if self.stop.is_set():
                    return
                self._reader = me
            try:
                if not frames:
                    self._flush_held()
                    if not mux.fill():
                        self._finish("eof")
                        return
                    continue
                try:
                    frame = frames.popleft()
                except IndexError:  # another thread took it (a reader change)
                    continue
                self._hold(frame[0])
                if not self._active.is_set():
                    self._active.set()
                self._call += 1
                self._running = self._call
                try:
                    self.dispatch(*frame)
                finally:
                    self._running = 0
                if self._reader != me:  # the watchdog made another thread the reader meanwhile
                    self._flush_held()
            except OSError:  # the supervisor went away while we answered
                self._finish("eof")
                return

    def _hold(self, chan: ipc.BlockingChannel) -> None:
        """Keep this thread's answers on ``chan`` until :meth:`_flush_held` (one send per batch)."""
        held = getattr(self._held, "chans", None)
        if held is None:
            held = self._held.chans = []
        if chan not in held:
            chan.hold()
            held.append(chan)

    def _flush_held(self) -> None:
        held = getattr(self._held, "chans", None)
        if held:
            self._held.chans = []
            for chan in held:
                chan.flush()

    def _watch(self, tick: float = 0.001, rest_after: int = 1000) -> None:
        """Make a parked thread the reader when the reader is stuck in one call (see the module doc).

        It looks every ``tick`` seconds while calls come, and rests after ``rest_after`` looks
        without a new call, until the reader wakes it again."""
        seen = 0
        quiet = 0
        last = self._call
        while not self.stop.is_set():
            if quiet >= rest_after:
                if self._unreported():
                    self._send_stats()
                self._active.clear()
                if self._call == last:
                    self._active.wait()
                quiet = 0
            time.sleep(tick)
            if self._unreported() and (time.monotonic() - self._stats_sent >= _STATS_EVERY_S):
                self._send_stats()
            running = self._running
            if running and running == seen and self._parked > 0 and self._reader is not None:
                self._reader = None  # the stuck reader parks when its call returns
                self._wake.release()
                seen = 0
            else:
                seen = running
            quiet = quiet + 1 if self._call == last else 0
            last = self._call

    def _finish(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
        self.stop.set()

    def dispatch(
        self, chan: ipc.BlockingChannel, op: int, flags: int, call_id: int, code: int, payload: bytes
    ) -> None:
        if op == wire.OP_ONCE:
            if chan.direct:
                self.direct_once(chan, call_id, payload)
            else:
                self.once(call_id, payload)
        elif op == wire.OP_CREATE:
            self.create(chan, call_id, payload)
        elif op == wire.OP_FRAME:
            self.frame(chan, call_id, payload)
        elif op == wire.OP_DESTROY:
            self.destroy(chan, call_id, code)
        elif op == ipc.OP_HUNG_UP:
            self.hung_up(chan)
        elif chan.direct:  # the supervisor's ops are not a direct caller's
            log.warning("direct caller sent op %d: closing its connection", op)
            chan.hang_up()
        elif op == wire.OP_DRAIN:
            self.draining = True
            self.mux.stop_listening()
        elif op == wire.OP_FINI:
            self._finish("fini")
        else:
            log.error("unknown frame op %d from the supervisor", op)

    # -- slots ------------------------------------------------------------------------------
    def _take(self, direct: bool = False) -> bool:
        with self._slots:
            if self._busy >= self.lic:
                return False
            self._busy += 1
            if direct:
                self._direct_busy += 1
            return True

    def _give(self, direct: bool = False) -> None:
        with self._slots:
            self._busy -= 1
            if direct:
                self._direct_busy -= 1
                if self._direct_busy == 0:
                    self._slots.notify_all()

    # -- once -------------------------------------------------------------------------------
    def once(self, call_id: int, payload: bytes) -> None:
        if not self._take():
            self.chan.send(wire.OP_ONCE_DONE, call_id, errors.NO_LICENCE, _FULL)
            return
        try:
            code, out = self._run_once(payload)
        finally:
            self._give()
        self.chan.send(wire.OP_ONCE_DONE, call_id, code, out)

    def direct_once(self, chan: ipc.BlockingChannel, call_id: int, payload: bytes) -> None:
        """A once call from a gateway on this host, not relayed by the supervisor."""
        seconds = None
        if self.draining or self.stop.is_set():
            code, out = errors.NO_LOADER, _DRAINING
        elif not self._take(direct=True):
            code, out = errors.NO_LICENCE, _FULL
        else:
            start = time.perf_counter()
            try:
                code, out = self._run_once(payload)
            finally:
                self._give(direct=True)
            seconds = time.perf_counter() - start
        with self._stats_lock:
            self._codes[code] = self._codes.get(code, 0) + 1
            if seconds is not None:
                self._seconds.append(seconds)
        chan.send(wire.OP_ONCE_DONE, call_id, code, out)

    def _run_once(self, payload: bytes) -> tuple[int, bytes]:
        try:
            result = self.host.once(wire.decode_request(payload))
            return result.code, wire.encode(result)
        except BaseException as exc:  # SystemExit from a wrapper must not kill this thread silently
            result = Result(errors.WRAPPER_EXCEPTION, errors.describe(exc))
            return result.code, wire.error_result(result.code, result.message)

    def _direct_sessions(self) -> int:
        return sum(1 for c, _id in list(self.sessions) if c.direct)

    def _unreported(self) -> bool:
        return bool(self._codes or self._session_codes) or self._direct_busy != self._reported_busy

    def _send_stats(self) -> None:
        """Tell the supervisor about the direct calls since the last time (its /metrics and
        free-licence reports count them)."""
        with self._stats_lock:
            codes, self._codes = self._codes, {}
            session_codes, self._session_codes = self._session_codes, {}
            seconds, self._seconds = self._seconds, []
            busy = self._direct_busy
        self._stats_sent = time.monotonic()
        self._reported_busy = busy
        sessions = self._direct_sessions()
        doc = {
            "busy": busy,
            "codes": codes,
            "session_codes": session_codes,
            "sessions": sessions,
            "seconds": seconds,
            "channels": self.mux.direct_channels,
        }
        with contextlib.suppress(OSError):
            self.chan.send(wire.OP_STATS, 0, 0, orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))

    def _greet(self, chan: ipc.BlockingChannel) -> None:
        """A gateway connected to the direct socket: the data port's greeting, no proof needed
        (the socket is in this user's 0700 folder, as the data port's own)."""
        chan.send(wire.OP_HELLO, 0, 0, wire.hello(b""))

    # -- sessions ---------------------------------------------------------------------------
    def _run(self, sess: _Session, job: Callable[[], None]) -> None:
        """Run ``job`` after the session's earlier ones: now when it is idle, else queued for the
        thread running it (which takes the queued jobs before it lets the session go)."""
        with self._sessions_lock:
            if sess.running:
                sess.jobs.append(job)
                return
            sess.running = True
        job()
        while True:
            with self._sessions_lock:
                if not sess.jobs:
                    sess.running = False
                    return
                job = sess.jobs.popleft()
            job()

    def create(self, chan: ipc.BlockingChannel, call_id: int, payload: bytes) -> None:
        key = (chan, call_id)
        if key in self.sessions:
            if chan.direct:
                log.warning("direct caller opened session %d twice: closing its connection", call_id)
                chan.hang_up()
            else:
                log.error("the supervisor opened session %d twice", call_id)
            return
        sess = _Session(chan, call_id)
        if chan.direct and (self.draining or self.stop.is_set()):
            out = _end_result(errors.NO_LOADER, "loader is draining")
            sess.send(wire.OP_SESSION_ACK, errors.NO_LOADER, out, True)
            return
        if not self._take(direct=chan.direct):
            message = "every engine licence of this loader is busy"
            sess.send(wire.OP_SESSION_ACK, errors.NO_LICENCE, _end_result(errors.NO_LICENCE, message), True)
            return
        with self._sessions_lock:
            self.sessions[key] = sess
        self._run(sess, lambda: self._create(sess, payload))

    def _create(self, sess: _Session, payload: bytes) -> None:
        try:
            req = wire.decode_request(payload)
            sess.sid = req.sid
            handle = self.host.create(req)
        except errors.AseError as exc:
            self._ended(sess)
            self._ack_exc(sess, exc)
            return
        except BaseException as exc:
            self._ended(sess)
            self._ack_error(sess, errors.WRAPPER_EXCEPTION, errors.describe(exc))
            return
        sess.state = EngineSession(self.host, handle, self.results)
        self.by_handle[handle] = sess
        if req.items or req.status == Status.END:
            self._run_frame(sess, req.status, req.items)
        else:
            sess.send(wire.OP_SESSION_ACK, 0)

    def _ended(self, sess: _Session) -> None:
        """The session is over for good (destroyed, or its create failed): out of the table, its
        slot free, its code counted for a direct caller."""
        with self._sessions_lock:
            if self.sessions.get((sess.chan, sess.call_id)) is sess:
                del self.sessions[(sess.chan, sess.call_id)]
        if sess.state is not None and self.by_handle.get(sess.state.handle) is sess:
            del self.by_handle[sess.state.handle]
        if sess.slot:
            sess.slot = False
            self._give(direct=sess.chan.direct)
            if sess.chan.direct:
                with self._stats_lock:
                    self._session_codes[sess.code] = self._session_codes.get(sess.code, 0) + 1

    def frame(self, chan: ipc.BlockingChannel, call_id: int, payload: bytes) -> None:
        sess = self.sessions.get((chan, call_id))
        if sess is None:
            out = _end_result(errors.frame_after_end().code, errors.frame_after_end().message)
            chan.send(wire.OP_SESSION_ACK, call_id, errors.frame_after_end().code, out, wire.FLAG_END)
            return
        self._run(sess, lambda: self._frame(sess, payload))

    def _frame(self, sess: _Session, payload: bytes) -> None:
        if sess.state is None:
            return  # its create failed and said so
        try:
            msg = wire.decode_frame(payload)
        except Exception as exc:
            self._ack_error(sess, errors.SCHEMA_MISMATCH, f"bad session frame: {exc}")
            return
        self._run_frame(sess, msg.status, msg.items)

    def _run_frame(self, sess: _Session, status: int, items: list[DataItem]) -> None:
        state = sess.state
        assert state is not None
        with sess.lock:
            if sess.caller_done or state.ended:
                state.ended = True
                self._ack_exc(sess, errors.frame_after_end())
                return
            if status == Status.END:
                sess.caller_done = True
            try:
                out, ended, _wait = state.frame(status, items)
            except errors.AseError as exc:
                state.ended = True
                self._ack_exc(sess, exc)
                return
            except BaseException as exc:
                state.ended = True
                self._ack_error(sess, errors.WRAPPER_EXCEPTION, errors.describe(exc))
                return
            payload = b""
            if out or ended:
                res = Result(items=out, status=sess.status_of_next(ended), sid=sess.sid)
                payload = wire.encode(res)
            sess.send(wire.OP_SESSION_ACK, 0, payload, ended)

    def push(self, handle: str, items: list[DataItem], code: int, message: str) -> None:
        """The ``callback`` sink: an async result from any wrapper thread."""
        sess = self.by_handle.get(handle)
        state = sess.state if sess is not None else None
        if sess is None or state is None:
            log.warning("callback for unknown or ended session handle %r dropped", handle)
            return
        with sess.lock:
            if state.ended:
                log.warning("callback for session %r after its end dropped", handle)
                return
            if code != 0:
                state.ended = True
                sess.send(wire.OP_SESSION_PUSH, code, _end_result(code, message, sess.sid), True)
                return
            ended = state.push(items)
            res = Result(items=items, status=sess.status_of_next(ended), sid=sess.sid)
            sess.send(wire.OP_SESSION_PUSH, 0, wire.encode(res), ended)

    def destroy(self, chan: ipc.BlockingChannel, call_id: int, why: int = 0) -> None:
        """The caller ends the session; ``why``: the code it ended with on the caller's side (a
        direct caller's 10114 when it kept the session's limits), counted for the session."""
        sess = self.sessions.get((chan, call_id))
        if sess is None:
            if not chan.direct:
                chan.send(wire.OP_DESTROYED, call_id, 0)
            return
        if why and not sess.code:
            sess.code = why
        self._run(sess, lambda: self._destroy(sess))

    def _destroy(self, sess: _Session, answer: bool = True) -> None:
        code = 0
        if sess.state is not None:
            with sess.lock:
                res = sess.state.destroy()
            code = res.code
        self._ended(sess)
        if answer and not sess.chan.direct:
            sess.chan.send(wire.OP_DESTROYED, sess.call_id, code)

    def hung_up(self, chan: ipc.BlockingChannel) -> None:
        """A direct caller went away: its sessions are destroyed (after what they run now)."""
        with self._sessions_lock:
            gone = [sess for (c, _id), sess in self.sessions.items() if c is chan]
        for sess in gone:
            self._run(sess, lambda sess=sess: self._destroy(sess))  # type: ignore[misc]

    def end_direct_sessions(self) -> None:
        """Stopping: the direct sessions still open end with 11503 and are destroyed."""
        with self._sessions_lock:
            left = [sess for (c, _id), sess in self.sessions.items() if c.direct]
        for sess in left:
            if sess.state is not None and not sess.state.ended:
                with sess.lock:
                    sess.state.ended = True
                out = _end_result(errors.NO_LOADER, "the loader stopped during the session", sess.sid)
                sess.send(wire.OP_SESSION_PUSH, errors.NO_LOADER, out, True)
            self._run(sess, lambda sess=sess: self._destroy(sess))  # type: ignore[misc]

    def _ack_exc(self, sess: _Session, exc: errors.AseError) -> None:
        self._ack_error(sess, exc.code, exc.message)

    def _ack_error(self, sess: _Session, code: int, message: str) -> None:
        sess.send(wire.OP_SESSION_ACK, code, _end_result(code, message, sess.sid), True)


def _end_result(code: int, message: str, sid: str = "") -> bytes:
    return wire.error_result(code, message, sid, Status.END)


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
