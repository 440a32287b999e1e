"""The supervisor's side of the worker processes: spawn, licence slots, calls, crashes, restarts.

Each :class:`WorkerProc` owns one worker process (its life cycle: spawn, ready, death, restart,
stop) and the non-blocking end of its socketpair (the lean wire; the I/O is
:mod:`~ase_serving.loader.worker_channel`); answers resolve futures keyed by call id. A worker has
``lic`` slots: a once call holds one until the worker answers (also after the caller timed out:
the engine is still busy), a session holds one until ``wrapperDestroy`` returned. When a worker
dies, every call and session on it ends with 10911 and the worker is started again (with a
backoff while it keeps dying before it is ready); its slots come back when ``wrapperInit``
succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from ase_serving import errors, wire
from ase_serving.backoff import Backoff
from ase_serving.errors import StartupError
from ase_serving.loader.settings import LoaderSettings
from ase_serving.loader.worker_channel import WorkerChannel
from ase_serving.protocol.items import Status

log = logging.getLogger("ase_serving.loader")

STARTING, READY, RESTARTING, STOPPED = "starting", "ready", "restarting", "stopped"
_BACKOFF_MAX_S = 5.0

#: (code, payload) answer of a once call
OnceAnswer = tuple[int, bytes]


class StartError(StartupError):
    """A worker could not load or init the wrapper at start-up; the message says why."""


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "unknown exit status"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class PoolSession:
    """The supervisor's view of one session in one worker."""

    def __init__(self, worker: WorkerProc, sess_id: int, generation: int) -> None:
        self.worker = worker
        self.id = sess_id
        self.generation = generation
        #: (code, encoded Result or b"", ends the session)
        self.results: asyncio.Queue[tuple[int, bytes, bool]] = asyncio.Queue()
        self.ack: asyncio.Future[int] | None = None
        self.ended = False
        self.closed = False

    def on_answer(self, code: int, flags: int, payload: bytes, is_ack: bool) -> None:
        end = bool(flags & wire.FLAG_END)
        if end:
            self.ended = True
        if payload or end:
            self.results.put_nowait((code, payload, end))
        if is_ack and self.ack is not None and not self.ack.done():
            self.ack.set_result(code)

    def die(self, payload: bytes) -> None:
        self.ended = True
        self.results.put_nowait((errors.WORKER_DIED, payload, True))
        if self.ack is not None and not self.ack.done():
            self.ack.set_result(errors.WORKER_DIED)

    async def frame(self, payload: bytes) -> int:
        """Send one caller frame and wait until the worker ran it (frames of a session run in order)."""
        ack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.ack = ack
        self.worker.send(wire.OP_FRAME, self.id, payload)
        return await ack

    def close(self) -> None:
        """End the session: ``wrapperDestroy`` runs in the worker, then the slot is free."""
        if self.closed:
            return
        self.closed = True
        self.ended = True
        w = self.worker
        if w.generation == self.generation and w.state == READY:
            w.send(wire.OP_DESTROY, self.id)
        else:
            w.sessions.pop(self.id, None)


class WorkerProc:
    """One worker process and its socket."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.lic = pool.settings.lic
        self.state = STARTING
        self.busy = 0
        #: Slots the worker's direct callers hold, how many are connected and the sessions they
        #: have open there, as it last reported (OP_STATS).
        self.direct_busy = 0
        self.direct_callers = 0
        self.direct_sessions = 0
        self.restarts = 0
        self.generation = 0
        self.pid = 0
        self.modes: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        #: The socket to the worker process; None while it is not running.
        self.chan: WorkerChannel | None = None
        self.pending: dict[int, asyncio.Future[OnceAnswer]] = {}
        self.sessions: dict[int, PoolSession] = {}
        self._started: asyncio.Future[str] | None = None  # "" = ready, else the reason
        self._fini: asyncio.Future[None] | None = None
        self._exited: asyncio.Event = asyncio.Event()
        self._restart_task: asyncio.Task[None] | None = None

    @property
    def direct_path(self) -> str | None:
        """The worker's own Unix socket, where gateways on this host call it directly."""
        base = self.pool.direct_base
        return f"{base}-w{self.index}.sock" if base else None

    # -- process ----------------------------------------------------------------------------
    def spawn(self) -> None:
        s = self.pool.settings
        parent, child = socket.socketpair()
        config = {
            "index": self.index,
            "project_dir": str(s.project_dir),
            "modes": sorted(s.modes),
            "wrapper_config": s.wrapper_config,
            "lic": s.lic,
            "session_results": s.session_results,
            "direct": self.direct_path,
        }
        try:
            out: Any = sys.stderr.fileno()  # stdout of the loader is for its ready line only
        except (AttributeError, OSError, ValueError):
            out = None
        cmd = [sys.executable, "-m", "ase_serving.loader.worker", "--fd", str(child.fileno())]
        cmd += ["--config", orjson.dumps(config).decode()]
        try:
            self.proc = subprocess.Popen(
                cmd, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=out
            )
        finally:
            child.close()
        self.pid = self.proc.pid
        self.generation += 1
        self.state = STARTING if self.state == STARTING else RESTARTING
        self._exited = asyncio.Event()
        loop = self.pool.loop
        self._started = loop.create_future()
        self.chan = WorkerChannel(parent, loop, self._on_frame, self._on_eof)

    async def wait_started(self) -> str:
        """ "" when wrapperInit succeeded, else why the worker did not start."""
        assert self._started is not None
        return await self._started

    def send(self, op: int, call_id: int, payload: bytes = b"", code: int = 0) -> None:
        """Queue a frame for the worker (dropped when it is gone: its calls end with 10911)."""
        if self.chan is not None:
            self.chan.send(op, call_id, payload, code)

    def _on_frame(self, op: int, flags: int, call_id: int, code: int, payload: bytes) -> None:
        if op == wire.OP_ONCE_DONE:
            fut = self.pending.pop(call_id, None)
            self.busy -= 1
            self.pool.slot_freed()
            if fut is not None and not fut.done():
                fut.set_result((code, payload))
        elif op == wire.OP_SESSION_ACK or op == wire.OP_SESSION_PUSH:
            sess = self.sessions.get(call_id)
            if sess is not None:
                sess.on_answer(code, flags, payload, op == wire.OP_SESSION_ACK)
        elif op == wire.OP_DESTROYED:
            if self.sessions.pop(call_id, None) is not None:
                self.busy -= 1
                self.pool.slot_freed()
        elif op == wire.OP_READY:
            info = orjson.loads(payload)
            self.modes = list(info.get("modes", []))
            self.busy = 0
            self.state = READY
            if self._started is not None and not self._started.done():
                self._started.set_result("")
            self.pool.slot_freed()
        elif op == wire.OP_INIT_FAILED:
            if self._started is not None and not self._started.done():
                self._started.set_result(payload.decode(errors="replace"))
        elif op == wire.OP_STATS:
            stats = orjson.loads(payload)
            self.direct_busy = int(stats.get("busy", 0))
            self.direct_callers = int(stats.get("channels", 0))
            self.direct_sessions = int(stats.get("sessions", 0))
            self.pool.on_stats(self, stats)
            self.pool.slot_freed()
        elif op == wire.OP_FINI_DONE:
            if code:
                log.warning("worker %d: wrapperFini failed: %s", self.index, payload.decode(errors="replace"))
            if self._fini is not None and not self._fini.done():
                self._fini.set_result(None)

    def _on_eof(self) -> None:
        if self.chan is not None:
            self.chan.close()
        self.chan = None
        was_ready = self.state == READY
        if self.state != STOPPED:
            self.state = RESTARTING
        self.pool.loop.create_task(self._reap(was_ready))

    async def _reap(self, was_ready: bool) -> None:
        proc = self.proc
        assert proc is not None
        deadline = time.monotonic() + 0.5
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if proc.poll() is None:  # closed its socket but lives on: not usable any more
            proc.kill()
            await asyncio.sleep(0.01)
        how = describe_exit(proc.poll())
        self._exited.set()
        if self._started is not None and not self._started.done():
            self._started.set_result(f"worker {self.index} (pid {proc.pid}) died during wrapperInit ({how})")
        stopping = self.pool.stopping or self.state == STOPPED
        msg = f"engine worker {self.index} (pid {proc.pid}) died ({how}) while running this request"
        if not stopping:
            msg += "; it is being restarted"
            log.error("engine worker %d (pid %d) died (%s); restarting it", self.index, proc.pid, how)
        once_answer = wire.error_result(errors.WORKER_DIED, msg)
        for fut in self.pending.values():
            if not fut.done():
                fut.set_result((errors.WORKER_DIED, once_answer))
        self.pending.clear()
        sess_answer = wire.error_result(errors.WORKER_DIED, msg, status=Status.END)
        for sess in self.sessions.values():
            sess.die(sess_answer)
        self.sessions.clear()
        self.busy = 0
        self.direct_busy = self.direct_callers = self.direct_sessions = 0
        self.pool.slot_freed()
        if stopping:
            self.state = STOPPED
        elif (was_ready or self.pool.started) and (self._restart_task is None or self._restart_task.done()):
            self._restart_task = self.pool.loop.create_task(self._restart())

    async def _restart(self) -> None:
        backoff = Backoff(0.2, _BACKOFF_MAX_S)
        while not self.pool.stopping:
            self.spawn()
            reason = await self.wait_started()
            if not reason:
                self.restarts += 1
                self.pool.on_restart(self)
                return
            log.error("worker %d failed to start again: %s", self.index, reason)
            await self._exited.wait()
            await asyncio.sleep(backoff.next())

    async def stop(self, timeout: float) -> None:
        """wrapperFini, then the process ends (killed when it takes longer than ``timeout``)."""
        proc = self.proc
        was_ready = self.state == READY
        self.state = STOPPED
        if proc is None or proc.poll() is not None:
            return
        if was_ready and self.chan is not None:
            self._fini = self.pool.loop.create_future()
            self.send(wire.OP_FINI, 0)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._exited.wait(), timeout)
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._exited.wait(), 2.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.5)


class WorkerPool:
    """The worker processes of one loader and the licence accounting across them."""

    def __init__(
        self,
        settings: LoaderSettings,
        loop: asyncio.AbstractEventLoop,
        on_restart: Callable[[WorkerProc], None] | None = None,
        on_stats: Callable[[WorkerProc, dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.loop = loop
        #: Where the workers' direct sockets go (``<base>-w<index>.sock``); None: no direct sockets.
        self.direct_base: str | None = None
        self._on_stats = on_stats
        self.workers = [WorkerProc(self, i + 1) for i in range(settings.workers)]
        self.started = False
        self.stopping = False
        self._ids = itertools.count(1)
        self._on_restart = on_restart
        self._idle = asyncio.Event()
        self.modes: list[str] = []

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every worker; raises :class:`StartError` when one cannot load or init the wrapper."""
        for w in self.workers:
            w.spawn()
        reasons = await asyncio.gather(*(w.wait_started() for w in self.workers))
        failed = [(w, r) for w, r in zip(self.workers, reasons, strict=True) if r]
        if failed:
            await self.stop(drain_timeout=0, fini_timeout=2.0)
            w, reason = failed[0]
            raise StartError(f"wrapper failed to start in worker {w.index}: {reason}")
        # [service] modes restricts what is offered; by default whatever wrapper.py can serve.
        self.modes = sorted(self.settings.modes) if self.settings.modes else self.workers[0].modes
        self.started = True

    async def stop(self, drain_timeout: float, fini_timeout: float = 10.0) -> None:
        """No new work; wait for in-flight work (bounded), then wrapperFini in every worker."""
        self.stopping = True
        if drain_timeout > 0:
            await self.wait_idle(drain_timeout)
        await asyncio.gather(*(w.stop(fini_timeout) for w in self.workers))
        for path in self.direct_paths():  # a worker that was killed left its socket behind
            with contextlib.suppress(OSError):
                os.unlink(path)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no slot is busy; False after ``timeout`` seconds."""
        deadline = self.loop.time() + timeout
        while self.busy() > 0:
            self._idle.clear()
            left = deadline - self.loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), left)
        return True

    def slot_freed(self) -> None:
        """A once call answered, a session was destroyed, or a worker (re)started or died."""
        self._idle.set()

    def on_restart(self, worker: WorkerProc) -> None:
        if self._on_restart is not None:
            self._on_restart(worker)

    def on_stats(self, worker: WorkerProc, stats: dict[str, Any]) -> None:
        if self._on_stats is not None:
            self._on_stats(worker, stats)

    def drain(self) -> None:
        """Workers refuse new direct calls (11503) and take no new direct callers."""
        for w in self.workers:
            if w.state == READY:
                w.send(wire.OP_DRAIN, 0)

    def direct_paths(self) -> list[str]:
        return [p for w in self.workers if (p := w.direct_path) is not None]

    # -- work -------------------------------------------------------------------------------
    def pick(self) -> WorkerProc | None:
        """The ready worker with the most free slots; None when every slot is busy."""
        best = None
        most = 0
        for w in self.workers:
            if w.state == READY:
                free = w.lic - w.busy - w.direct_busy
                if free > most:
                    best, most = w, free
        return best

    def submit_once(self, payload: bytes) -> asyncio.Future[OnceAnswer] | None:
        """Send a serialized OnceRequest to a worker; None when no slot is free (10110)."""
        w = self.pick()
        if w is None:
            return None
        w.busy += 1
        call_id = next(self._ids)
        fut: asyncio.Future[OnceAnswer] = self.loop.create_future()
        w.pending[call_id] = fut
        w.send(wire.OP_ONCE, call_id, payload)
        return fut

    def open_session(self, first: bytes) -> PoolSession | None:
        """Create a session from its first serialized SessionRequest; None when no slot is free."""
        w = self.pick()
        if w is None:
            return None
        w.busy += 1
        sess = PoolSession(w, next(self._ids), w.generation)
        sess.ack = self.loop.create_future()
        w.sessions[sess.id] = sess
        w.send(wire.OP_CREATE, sess.id, first)
        return sess

    # -- state ------------------------------------------------------------------------------
    def busy(self) -> int:
        """Slots in use: what this process relays, and what direct callers hold (as last reported)."""
        return sum(w.busy + w.direct_busy for w in self.workers)

    def lic_total(self) -> int:
        """Slots of the workers that are ready (a restarting worker's slots are not offered)."""
        return sum(w.lic for w in self.workers if w.state == READY)

    def sessions(self) -> int:
        return sum(len(w.sessions) + w.direct_sessions for w in self.workers)

    def healthy(self) -> bool:
        return self.started and not self.stopping and any(w.state == READY for w in self.workers)

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {
                "index": w.index,
                "pid": w.pid or os.getpid(),
                "state": w.state,
                "lic_total": w.lic,
                "lic_busy": w.busy + w.direct_busy,
                "restarts": w.restarts,
            }
            for w in self.workers
        ]
