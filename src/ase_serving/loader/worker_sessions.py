"""The sessions of one worker process, of the supervisor or of direct callers.

A session's answers go back on the channel its caller used, under the caller's ``call_id``. Its
operations (create, frames, destroy) run in the order they came, one at a time
(:meth:`Sessions.run`): a frame that arrives while the session runs another waits in
:attr:`WorkerSession.jobs`, and so does a destroy that arrives while the create still runs. A
session holds a licence slot (:class:`~ase_serving.loader.worker_slots.Slots`) until destroyed.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

from ase_serving import errors, wire
from ase_serving.loader import ipc
from ase_serving.loader.host import EngineHost, EngineSession
from ase_serving.loader.worker_slots import DirectStats, Slots
from ase_serving.protocol.items import DataItem, Result, Status

log = logging.getLogger("ase_serving.loader.worker")


class WorkerSession:
    """One session in this worker: its answers go back on ``chan`` under the caller's ``call_id``."""

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
        #: Guards the state against a wrapper thread's callback (:meth:`Sessions.push`).
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


class Sessions:
    """Every open session of one worker, by (the caller's channel, its session id) and by the
    wrapper's handle (for its callbacks); ``refusing()`` says the worker takes no new direct work."""

    def __init__(
        self,
        host: EngineHost,
        results: str,
        slots: Slots,
        stats: DirectStats,
        refusing: Callable[[], bool],
    ) -> None:
        self.host = host
        self.results = results
        self.slots = slots
        self.stats = stats
        self.refusing = refusing
        self.open: dict[tuple[ipc.BlockingChannel, int], WorkerSession] = {}
        self.by_handle: dict[str, WorkerSession] = {}
        self._lock = threading.Lock()

    def direct_count(self) -> int:
        return sum(1 for c, _id in list(self.open) if c.direct)

    def run(self, sess: WorkerSession, job: Callable[[], None]) -> None:
        """Run ``job`` after the session's earlier ones: now when it is idle, else queued for the
        thread running it (which takes the queued jobs before it lets the session go)."""
        with self._lock:
            if sess.running:
                sess.jobs.append(job)
                return
            sess.running = True
        job()
        while True:
            with self._lock:
                if not sess.jobs:
                    sess.running = False
                    return
                job = sess.jobs.popleft()
            job()

    def create(self, chan: ipc.BlockingChannel, call_id: int, payload: bytes) -> None:
        key = (chan, call_id)
        if key in self.open:
            if chan.direct:
                log.warning("direct caller opened session %d twice: closing its connection", call_id)
                chan.hang_up()
            else:
                log.error("the supervisor opened session %d twice", call_id)
            return
        sess = WorkerSession(chan, call_id)
        if chan.direct and self.refusing():
            out = _end_result(errors.NO_LOADER, "loader is draining")
            sess.send(wire.OP_SESSION_ACK, errors.NO_LOADER, out, True)
            return
        if not self.slots.take(direct=chan.direct):
            message = "every engine licence of this loader is busy"
            sess.send(wire.OP_SESSION_ACK, errors.NO_LICENCE, _end_result(errors.NO_LICENCE, message), True)
            return
        with self._lock:
            self.open[key] = sess
        self.run(sess, lambda: self._create(sess, payload))

    def _create(self, sess: WorkerSession, payload: bytes) -> None:
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

    def _ended(self, sess: WorkerSession) -> None:
        """The session is over for good (destroyed, or its create failed): out of the table, its
        slot free, its code counted for a direct caller."""
        with self._lock:
            if self.open.get((sess.chan, sess.call_id)) is sess:
                del self.open[(sess.chan, sess.call_id)]
        if sess.state is not None and self.by_handle.get(sess.state.handle) is sess:
            del self.by_handle[sess.state.handle]
        if sess.slot:
            sess.slot = False
            self.slots.give(direct=sess.chan.direct)
            if sess.chan.direct:
                self.stats.session(sess.code)

    def frame(self, chan: ipc.BlockingChannel, call_id: int, payload: bytes) -> None:
        sess = self.open.get((chan, call_id))
        if sess is None:
            out = _end_result(errors.frame_after_end().code, errors.frame_after_end().message)
            chan.send(wire.OP_SESSION_ACK, call_id, errors.frame_after_end().code, out, wire.FLAG_END)
            return
        self.run(sess, lambda: self._frame(sess, payload))

    def _frame(self, sess: WorkerSession, payload: bytes) -> None:
        if sess.state is None:
            return  # its create failed and said so
        try:
            msg = wire.decode_frame(payload)
        except Exception as exc:
            self._ack_error(sess, errors.SCHEMA_MISMATCH, f"bad session frame: {exc}")
            return
        self._run_frame(sess, msg.status, msg.items)

    def _run_frame(self, sess: WorkerSession, status: int, items: list[DataItem]) -> None:
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
        sess = self.open.get((chan, call_id))
        if sess is None:
            if not chan.direct:
                chan.send(wire.OP_DESTROYED, call_id, 0)
            return
        if why and not sess.code:
            sess.code = why
        self.run(sess, lambda: self._destroy(sess))

    def _destroy(self, sess: WorkerSession, answer: bool = True) -> None:
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
        with self._lock:
            gone = [sess for (c, _id), sess in self.open.items() if c is chan]
        for sess in gone:
            self.run(sess, lambda sess=sess: self._destroy(sess))  # type: ignore[misc]

    def end_direct(self) -> None:
        """Stopping: the direct sessions still open end with 11503 and are destroyed."""
        with self._lock:
            left = [sess for (c, _id), sess in self.open.items() if c.direct]
        for sess in left:
            if sess.state is not None and not sess.state.ended:
                with sess.lock:
                    sess.state.ended = True
                out = _end_result(errors.NO_LOADER, "the loader stopped during the session", sess.sid)
                sess.send(wire.OP_SESSION_PUSH, errors.NO_LOADER, out, True)
            self.run(sess, lambda sess=sess: self._destroy(sess))  # type: ignore[misc]

    def _ack_exc(self, sess: WorkerSession, exc: errors.AseError) -> None:
        self._ack_error(sess, exc.code, exc.message)

    def _ack_error(self, sess: WorkerSession, code: int, message: str) -> None:
        sess.send(wire.OP_SESSION_ACK, code, _end_result(code, message, sess.sid), True)


def _end_result(code: int, message: str, sid: str = "") -> bytes:
    return wire.error_result(code, message, sid, Status.END)
