"""The loader front: admission, timeouts and session lives over the worker pool, and the data port.

:class:`Front` decides what every call gets before and after a worker runs it, whatever port it
came in on: the state (starting, serving, draining -> 11503), a free licence slot (else 10110 at
once, never a queue), the once timeout (10114, the caller's deadline when shorter), a session's
idle and total limits, and the metrics. Payloads are the workers' own MessagePack bytes: the front
relays them without decoding (see :mod:`ase_serving.wire`).

:class:`DataServer` is the data port the gateways use: the lean wire on TCP, calls multiplexed on
persistent connections, each call relayed to a worker by rewriting its call id. It binds
127.0.0.1 unless told otherwise; on any other address every connection must first prove that it
knows the cluster's secret (the ``OP_HELLO`` challenge); TLS is optional. The gRPC port
(:mod:`~ase_serving.loader.grpc_api`) is the interop port on the same :class:`Front`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable

from ase_serving import errors, wire
from ase_serving.clock import Deadlines, Expired, SessionClock
from ase_serving.loader.metrics import LoaderMetrics
from ase_serving.loader.pool import OnceAnswer, PoolSession, WorkerPool
from ase_serving.loader.settings import LoaderSettings
from ase_serving.protocol.items import Status
from ase_serving.wire_stream import Connection

log = logging.getLogger("ase_serving.loader")

STARTING, SERVING, DRAINING = "starting", "serving", "draining"

#: Sends one session result: (code, encoded Result, ends the session).
Emit = Callable[[int, bytes, bool], Awaitable[None]]


def _end(code: int, message: str) -> bytes:
    return wire.error_result(code, message, status=Status.END)


class Front:
    """Once calls and sessions over the pool, for every port of one loader."""

    def __init__(self, pool: WorkerPool, settings: LoaderSettings, metrics: LoaderMetrics) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.state = STARTING
        self.once_ok = self.session_ok = False
        self._no_lic = wire.error_result(errors.NO_LICENCE, "every engine licence of this loader is busy")
        self._no_once = wire.error_result(
            errors.UNSUPPORTED_MODE, "this service takes sessions only (no wrapperOnceExec)"
        )
        #: Once calls' deadlines (one timer for all) and start times.
        self.deadlines = Deadlines(_expire)
        self._started: dict[asyncio.Future[OnceAnswer], float] = {}
        self._not_serving = {
            STARTING: wire.error_result(errors.NO_LOADER, "loader is starting"),
            DRAINING: wire.error_result(errors.NO_LOADER, "loader is draining"),
        }

    def serving(self) -> None:
        """Start taking calls (every worker has run wrapperInit; the modes are known)."""
        modes = self.pool.modes
        self.once_ok, self.session_ok = "once" in modes, "session" in modes
        self.state = SERVING

    # -- once -------------------------------------------------------------------------------
    def once(self, payload: bytes, deadline_s: float = 0.0) -> OnceAnswer | asyncio.Future[OnceAnswer]:
        """An encoded Request -> an answer now (refused) or a future of (code, encoded Result)."""
        if self.state != SERVING:
            self.metrics.count("once", errors.NO_LOADER)
            return errors.NO_LOADER, self._not_serving[self.state]
        if not self.once_ok:
            self.metrics.count("once", errors.UNSUPPORTED_MODE)
            return errors.UNSUPPORTED_MODE, self._no_once
        fut = self.pool.submit_once(payload)
        if fut is None:
            self.metrics.count("once", errors.NO_LICENCE)
            return errors.NO_LICENCE, self._no_lic
        timeout = self.settings.once_timeout_s
        if 0 < deadline_s < timeout:
            timeout = deadline_s
        self.deadlines.add(fut, timeout, timeout)
        fut.add_done_callback(self._once_done)
        self._started[fut] = time.perf_counter()
        return fut

    def _once_done(self, fut: asyncio.Future[OnceAnswer]) -> None:
        self.deadlines.discard(fut)
        t0 = self._started.pop(fut, None)
        if not fut.cancelled():
            self.metrics.count("once", fut.result()[0])
            if t0 is not None:
                self.metrics.observe_once(time.perf_counter() - t0)

    # -- sessions ---------------------------------------------------------------------------
    async def session(
        self, first: bytes, inbox: asyncio.Queue[bytes | None], emit: Emit, deadline_s: float = 0.0
    ) -> None:
        """Run one session: ``first`` is the encoded first Request, ``inbox`` the caller's later
        frames (encoded Frames; None when the caller sent no more), ``emit`` sends results.

        Returns when the session ended (last result, error, timeout); cancel it when the caller
        went away. Either way the worker runs ``wrapperDestroy`` and the slot comes back."""
        if self.state != SERVING:
            self.metrics.count("session", errors.NO_LOADER)
            await emit(errors.NO_LOADER, _end(errors.NO_LOADER, f"loader is {self.state}"), True)
            return
        if not self.session_ok:
            self.metrics.count("session", errors.UNSUPPORTED_MODE)
            msg = "this service takes once requests only (no wrapperCreate)"
            await emit(errors.UNSUPPORTED_MODE, _end(errors.UNSUPPORTED_MODE, msg), True)
            return
        sess = self.pool.open_session(first)
        if sess is None:
            self.metrics.count("session", errors.NO_LICENCE)
            await emit(errors.NO_LICENCE, _end(errors.NO_LICENCE, "every engine licence is busy"), True)
            return
        s = self.settings
        total = s.session_timeout_s
        if 0 < deadline_s < total:
            total = deadline_s
        # Idle: no frame from the caller and no result from the engine for read_timeout.
        clock = SessionClock(s.read_timeout_s, total)
        pump = self.pool.loop.create_task(_pump(sess, inbox, clock))
        code = 0
        try:
            while True:
                try:
                    rcode, payload, end = await clock.get(sess.results)
                except Expired as exc:
                    code = errors.TIMEOUT
                    if exc.kind == "total":
                        why = f"session longer than {total:g} s (session_timeout)"
                    else:
                        why = f"no frame for {s.read_timeout_s:g} s (read_timeout)"
                    await emit(code, _end(code, f"timeout: {why}"), True)
                    break
                clock.touch()
                if payload:
                    if end:
                        code = rcode
                    await emit(rcode, payload, end)
                if end:
                    break
        finally:
            clock.close()
            pump.cancel()
            sess.close()
            self.metrics.count("session", code)


async def _pump(sess: PoolSession, inbox: asyncio.Queue[bytes | None], clock: SessionClock) -> None:
    """Caller frames -> the worker, one at a time (the next goes when the last one ran)."""
    assert sess.ack is not None
    if await sess.ack or sess.ended:
        return
    while not sess.ended:
        msg = await inbox.get()
        if msg is None:
            return
        clock.touch()
        if await sess.frame(msg):
            return


def _expire(fut: asyncio.Future[OnceAnswer], timeout: float) -> None:
    if fut.done():
        return
    log.warning(
        "a once call got no answer within %g s; its licence stays busy until the engine returns", timeout
    )
    fut.set_result(
        (errors.TIMEOUT, wire.error_result(errors.TIMEOUT, f"engine did not answer within {timeout:g} s"))
    )


# -- the data port ---------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Conn(Connection):
    """One caller's connection to the data port."""

    def __init__(self, server: DataServer, local: bool = False) -> None:
        super().__init__()
        self.server = server
        self.front = server.front
        ask = server.secret is not None and not local
        self.nonce = os.urandom(16) if ask else b""
        self.authed = not ask
        #: session id -> (task, inbox)
        self.sessions: dict[int, tuple[asyncio.Task[None], asyncio.Queue[bytes | None]]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server.conns.add(self)
        self.send(wire.OP_HELLO, 0, 0, wire.hello(self.nonce))

    def on_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)
        for task, _inbox in self.sessions.values():
            task.cancel()
        self.sessions.clear()

    def pause_writing(self) -> None:
        # The caller does not read its answers: take no new calls from it until it does.
        super().pause_writing()
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.transport is not None:
            self.transport.resume_reading()

    def on_frame(self, op: int, flags: int, call_id: int, code: int, payload: bytes) -> None:
        if op == wire.OP_ONCE and self.authed:
            answer = self.front.once(payload, code / 1000.0)
            if isinstance(answer, tuple):
                self.send(wire.OP_ONCE_DONE, call_id, answer[0], answer[1])
            else:
                answer.add_done_callback(lambda f: self._once_done(call_id, f))
        elif op == wire.OP_FRAME:
            entry = self.sessions.get(call_id)
            if entry is not None:
                entry[1].put_nowait(payload)
        elif op == wire.OP_CREATE and self.authed:
            if call_id in self.sessions:
                self.abort()
                return
            inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
            task = self.loop.create_task(self._session(call_id, payload, inbox, code / 1000.0))
            self.sessions[call_id] = (task, inbox)
        elif op == wire.OP_DESTROY:
            entry = self.sessions.pop(call_id, None)
            if entry is not None:
                entry[0].cancel()
        elif op == wire.OP_AUTH and not self.authed:
            secret = self.server.secret
            assert secret is not None
            if hmac.compare_digest(payload, wire.proof(secret, self.nonce)):
                self.authed = True
                self.send(wire.OP_AUTH_OK, 0)
            else:
                self._refuse("wrong cluster secret")
        else:
            self._refuse(
                f"unexpected frame (op {op}) before the handshake" if not self.authed else f"unknown op {op}"
            )

    def _refuse(self, why: str) -> None:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        log.warning("data port: connection from %s refused: %s", peer, why)
        self.send(wire.OP_AUTH_FAILED, 0, 0, why.encode())
        self.close()

    def _once_done(self, call_id: int, fut: asyncio.Future[OnceAnswer]) -> None:
        if not fut.cancelled():
            code, payload = fut.result()
            self.send(wire.OP_ONCE_DONE, call_id, code, payload)

    async def _session(
        self, sess_id: int, first: bytes, inbox: asyncio.Queue[bytes | None], deadline: float
    ) -> None:
        async def emit(code: int, payload: bytes, end: bool) -> None:
            self.send(wire.OP_SESSION_PUSH, sess_id, code, payload, wire.FLAG_END if end else 0)

        try:
            await self.front.session(first, inbox, emit, deadline)
        finally:
            entry = self.sessions.get(sess_id)
            if entry is not None and entry[1] is inbox:
                del self.sessions[sess_id]


class DataServer:
    """The lean-wire data port of one loader."""

    def __init__(
        self,
        front: Front,
        host: str,
        port: int,
        secret: bytes | None = None,
        tls: ssl.SSLContext | None = None,
        uds: str | None = None,
    ) -> None:
        self.front = front
        #: A Unix socket path to listen on as well (callers on this host; no secret asked there:
        #: the folder is this user's only).
        self.uds = uds
        self._uds_server: asyncio.Server | None = None
        self.host = host
        self.port = port
        self.secret = secret
        self.tls = tls
        self.conns: set[_Conn] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the port (a free one for port 0). Raises OSError when it cannot bind."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _Conn(self),
            self.host.strip("[]"),
            self.port,
            ssl=self.tls,
            reuse_address=True,
            backlog=1024,
        )
        sock = self.server.sockets[0]
        self.port = sock.getsockname()[1]
        if self.uds is not None:
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.uds)
                self._uds_server = await loop.create_unix_server(lambda: _Conn(self, local=True), self.uds)
            except OSError as exc:
                log.warning(
                    "no Unix socket for the data port at %s (%s): gateways here use TCP", self.uds, exc
                )
                self.uds = None
        return self.port

    async def close(self) -> None:
        if self._uds_server is not None:
            self._uds_server.close()
            with contextlib.suppress(OSError):
                os.unlink(self.uds or "")
        if self.server is not None:
            self.server.close()
        for conn in list(self.conns):
            conn.abort()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)
