"""The serving loop of a loader worker process: ``lic + 1`` threads, one at a time the *reader*.

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
the call came from, and both kinds share the ``lic`` slots (:mod:`.worker_slots`). Once calls run
here; sessions in :mod:`.worker_sessions`. The process around it: :mod:`.worker`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

import orjson

from ase_serving import errors, wire
from ase_serving.loader import ipc
from ase_serving.loader.host import EngineHost
from ase_serving.loader.worker_sessions import Sessions
from ase_serving.loader.worker_slots import DirectStats, Slots
from ase_serving.protocol.items import Result

log = logging.getLogger("ase_serving.loader.worker")

_FULL = wire.error_result(errors.NO_LICENCE, "every engine licence of this loader is busy")
_DRAINING = wire.error_result(errors.NO_LOADER, "loader is draining")
#: Seconds between two OP_STATS while direct calls come.
_STATS_EVERY_S = 0.1
#: The most a worker told to stop waits for its direct once calls before wrapperFini.
_FINI_WAIT_S = 30.0


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
        self.lic = lic
        self.stop = threading.Event()
        self.stop_reason = ""
        self.mux = ipc.Mux(chan, listener, self._greet)
        #: Slots taken (once calls running, whoever sent them, and open sessions): at ``lic``
        #: the next call gets 10110.
        self.slots = Slots(lic)
        self.draining = False
        #: Direct calls since the last OP_STATS.
        self.stats = DirectStats()
        self.sessions = Sessions(host, results, self.slots, self.stats, self._refusing)
        self._stats_sent = -1.0
        self._reported_busy = 0
        self._held = threading.local()
        host.install_callback(self.sessions.push)

    def _refusing(self) -> bool:
        """No new direct calls: the loader drains or this worker stops."""
        return self.draining or self.stop.is_set()

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
        self.slots.wait_direct(self.sessions.direct_count, _FINI_WAIT_S)
        self.sessions.end_direct()
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
                # Looked at again after the clear: a call that ended between the report above and
                # the clear set the event before it, and its stats would wait for the next call.
                if self._call == last and not self._unreported():
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
            self.sessions.create(chan, call_id, payload)
        elif op == wire.OP_FRAME:
            self.sessions.frame(chan, call_id, payload)
        elif op == wire.OP_DESTROY:
            self.sessions.destroy(chan, call_id, code)
        elif op == ipc.OP_HUNG_UP:
            self.sessions.hung_up(chan)
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

    # -- once -------------------------------------------------------------------------------
    def once(self, call_id: int, payload: bytes) -> None:
        if not self.slots.take():
            self.chan.send(wire.OP_ONCE_DONE, call_id, errors.NO_LICENCE, _FULL)
            return
        try:
            code, out = self._run_once(payload)
        finally:
            self.slots.give()
        self.chan.send(wire.OP_ONCE_DONE, call_id, code, out)

    def direct_once(self, chan: ipc.BlockingChannel, call_id: int, payload: bytes) -> None:
        """A once call from a gateway on this host, not relayed by the supervisor."""
        seconds = None
        if self._refusing():
            code, out = errors.NO_LOADER, _DRAINING
        elif not self.slots.take(direct=True):
            code, out = errors.NO_LICENCE, _FULL
        else:
            start = time.perf_counter()
            try:
                code, out = self._run_once(payload)
            finally:
                self.slots.give(direct=True)
            seconds = time.perf_counter() - start
        self.stats.once(code, seconds)
        # The watcher reports this call and the freed slot. It may be resting (since this call
        # began, for one longer than its rest): then the supervisor would count the slot busy and
        # miss the call until the next one (/health a licence short, a drain waiting its whole
        # timeout). Woken after the stats are recorded, so that what it sends includes them.
        self._active.set()
        chan.send(wire.OP_ONCE_DONE, call_id, code, out)

    def _run_once(self, payload: bytes) -> tuple[int, bytes]:
        try:
            result = self.host.once(wire.decode_request(payload))
            return result.code, wire.encode(result)
        except BaseException as exc:  # SystemExit from a wrapper must not kill this thread silently
            result = Result(errors.WRAPPER_EXCEPTION, errors.describe(exc))
            return result.code, wire.error_result(result.code, result.message)

    def _unreported(self) -> bool:
        return self.stats.any() or self.slots.direct_busy != self._reported_busy

    def _send_stats(self) -> None:
        """Tell the supervisor about the direct calls since the last time (its /metrics and
        free-licence reports count them)."""
        with self.stats.lock:
            codes, session_codes, seconds = self.stats.take()
            busy = self.slots.direct_busy
        self._stats_sent = time.monotonic()
        self._reported_busy = busy
        sessions = self.sessions.direct_count()
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
