"""The asyncio client of a loader's data port (the lean wire, :mod:`ase_serving.wire`).

One persistent connection per loader, opened on first use and again after it was lost; once
calls and sessions are multiplexed on it by call id. Failures are results with protocol codes,
never exceptions:

* the connection cannot be opened (refused, unreachable, handshake refused): 11503 (no loader):
  the call provably never reached a worker, so the gateway may try another loader;
* the connection is lost with calls in flight: each ends with 10911 at once;
* no answer before the call's deadline: 10114 (the late answer is dropped).

At most ``max_inflight`` calls and sessions are open on a connection; more wait for one to end,
and new work also waits while the loader is not reading (the transport's buffer is full).
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Awaitable, Callable, Iterable

from ase_serving import errors, wire
from ase_serving.addr import split_host_port
from ase_serving.clock import Deadlines, Expired, SessionClock
from ase_serving.protocol.items import DataItem, Frame, Request, Result, Status
from ase_serving.wire_stream import Connection

#: Where the handshake's secret comes from: a coroutine function that fetches it.
SecretSource = Callable[[], Awaitable[bytes | None]]


def split_address(address: str) -> tuple[str, int] | str:
    """``host:port`` -> (host, port); ``unix:/path`` -> the path."""
    if address.startswith("unix:"):
        return address[5:]
    try:
        return split_host_port(address)
    except ValueError:
        raise ValueError(f"loader address {address!r} is not host:port or unix:/path") from None


class _Conn(Connection):
    def __init__(self, client: WireLoaderClient) -> None:
        super().__init__()
        self.client = client
        self.pending: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self.sessions: dict[int, WireSession] = {}
        self.ready: asyncio.Future[str] = self.loop.create_future()  # "" or why not
        self.gone: asyncio.Future[None] = self.loop.create_future()
        self.deadlines = Deadlines(self._expire)
        self.lost_why = ""

    def on_frame(self, op: int, flags: int, call_id: int, code: int, payload: bytes) -> None:
        if op == wire.OP_ONCE_DONE:
            fut = self.pending.pop(call_id, None)
            if fut is not None and not fut.done():
                fut.set_result((code, payload))
        elif op == wire.OP_SESSION_PUSH or op == wire.OP_SESSION_ACK:  # ACK: a worker's, per frame
            sess = self.sessions.get(call_id)
            if sess is not None:
                sess._push(code, payload, bool(flags & wire.FLAG_END))
        elif op == wire.OP_HELLO:
            self._hello(payload)
        elif op == wire.OP_AUTH_OK:
            self._set_ready("")
        elif op == wire.OP_AUTH_FAILED:
            self._set_ready(f"the loader refused the connection: {payload.decode(errors='replace')}")
            self.abort()

    def _hello(self, payload: bytes) -> None:
        try:
            nonce = wire.read_hello(payload)
        except wire.ProtocolError as exc:
            self._set_ready(str(exc))
            self.abort()
            return
        if not nonce:
            self._set_ready("")
            return
        self.loop.create_task(self._auth(nonce))

    async def _auth(self, nonce: bytes) -> None:
        secret = await self.client.secret()
        if secret is None:
            self._set_ready(
                "the loader's data port asks for the cluster secret and this side has none: give the "
                "gateway the config centre (--config) that holds it"
            )
            self.abort()
            return
        self.send(wire.OP_AUTH, 0, 0, wire.proof(secret, nonce))

    def _expire(self, call_id: int, _arg: object) -> None:
        fut = self.pending.pop(call_id, None)
        if fut is not None and not fut.done():
            fut.set_result((errors.TIMEOUT, _TIMED_OUT))

    def _set_ready(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_result(why)

    def on_lost(self, exc: Exception | None) -> None:
        why = (
            self.lost_why or f"connection to the loader at {self.client.address} lost ({wire.describe(exc)})"
        )
        self._set_ready(why)
        if not self.gone.done():
            self.gone.set_result(None)
        self.deadlines.close()
        if self.client._conn is self:
            self.client._conn = None
        pending, self.pending = self.pending, {}
        if pending:
            answer = wire.error_result(errors.WORKER_DIED, why)
            for fut in pending.values():
                if not fut.done():
                    fut.set_result((errors.WORKER_DIED, answer))
        sessions, self.sessions = self.sessions, {}
        if sessions:
            answer = wire.error_result(errors.WORKER_DIED, why, status=Status.END)
            for sess in sessions.values():
                sess._push(errors.WORKER_DIED, answer, True)


class WireLoaderClient:
    """Calls to one loader's data port at ``address`` (``host:port`` or ``unix:/path``)."""

    def __init__(
        self,
        address: str,
        secret: SecretSource | bytes | None = None,
        max_inflight: int = 4096,
        connect_timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.address = address
        self.target = split_address(address)
        self._secret = secret
        self.max_inflight = max_inflight
        self.connect_timeout = connect_timeout
        self.tls = tls
        self._conn: _Conn | None = None
        self._connecting: asyncio.Future[_Conn | str] | None = None
        self._ids = itertools.count(1)
        self.inflight = 0
        self._slots: asyncio.Condition | None = None

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self._conn is not None and not self._conn.closed

    async def secret(self) -> bytes | None:
        source = self._secret
        if source is None or isinstance(source, bytes):
            return source
        return await source()

    # -- the connection ---------------------------------------------------------------------
    async def _connection(self) -> _Conn | str:
        """The open connection, or why there is none (the call never left)."""
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        fut = self._connecting
        try:
            return await asyncio.shield(fut)
        finally:
            if fut.done() and self._connecting is fut:
                self._connecting = None

    async def _connect(self) -> _Conn | str:
        try:
            conn = await asyncio.wait_for(self._open(), self.connect_timeout)
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            return f"loader unreachable at {self.address}: {wire.describe(exc) or 'timed out'}"
        why = conn.ready.result()
        if why:
            conn.abort()
            return why
        self._conn = conn
        return conn

    async def _open(self) -> _Conn:
        loop = asyncio.get_running_loop()
        target = self.target
        if isinstance(target, str):
            _t, conn = await loop.create_unix_connection(lambda: _Conn(self), target, ssl=self.tls)
        else:
            _t, conn = await loop.create_connection(lambda: _Conn(self), *target, ssl=self.tls)
        try:
            await conn.ready
        except BaseException:
            conn.abort()
            raise
        return conn

    async def reachable(self) -> bool:
        """Whether the loader answers a connection with its greeting (connects if need be)."""
        return not isinstance(await self._connection(), str)

    async def _wait_slot(self) -> None:
        if self._slots is None:
            self._slots = asyncio.Condition()
        async with self._slots:
            await self._slots.wait_for(lambda: self.inflight < self.max_inflight)
        self.inflight += 1

    def _free(self) -> None:
        self.inflight -= 1
        slots = self._slots
        if slots is not None and not slots.locked():
            asyncio.get_running_loop().create_task(_notify(slots))

    # -- calls ------------------------------------------------------------------------------
    async def once(self, req: Request, timeout: float | None = None) -> Result:
        """Run one once request; never raises for loader-side failures (see ``Result.code``)."""
        if req.timeout_s > 0 and (timeout is None or req.timeout_s < timeout):
            timeout = req.timeout_s
        conn = self._conn
        if conn is None or conn.closed:
            got = await self._connection()
            if isinstance(got, str):
                return Result(errors.NO_LOADER, got, status=Status.END)
            conn = got
        if self.inflight < self.max_inflight:
            self.inflight += 1
        else:
            await self._wait_slot()
        try:
            if not conn.writable.is_set():
                await conn.writable.wait()
            if conn.closed:
                return Result(
                    errors.WORKER_DIED, conn.lost_why or "connection to the loader lost", status=Status.END
                )
            call_id = next(self._ids) & 0xFFFFFFFF
            fut: asyncio.Future[tuple[int, bytes]] = conn.loop.create_future()
            conn.pending[call_id] = fut
            conn.send(wire.OP_ONCE, call_id, wire.deadline_ms(timeout), wire.encode(req))
            if timeout:
                conn.deadlines.add(call_id, timeout)
            try:
                _code, payload = await fut
            finally:
                if timeout:
                    conn.deadlines.discard(call_id)
                conn.pending.pop(call_id, None)
        finally:
            self._free()
        return wire.decode_result(payload)

    def session(
        self, first: Request, timeout: float | None = None, limits: SessionLimits | None = None
    ) -> WireSession:
        """A session; ``first`` carries the meta and the first frame. Call :meth:`WireSession.open`.
        ``limits``: keep the loader's session limits on this side (a worker's direct socket,
        where no loader front keeps them)."""
        return WireSession(self, first, timeout, limits)

    async def close(self) -> None:
        """Close the connection (calls still in flight end with 10911)."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.lost_why = f"the client of the loader at {self.address} was closed"
            conn.close()
            try:
                await asyncio.wait_for(asyncio.shield(conn.gone), 1.0)
            except asyncio.TimeoutError:
                conn.abort()


_TIMED_OUT = wire.error_result(errors.TIMEOUT, "loader did not answer before the deadline")


async def _notify(cond: asyncio.Condition) -> None:
    async with cond:
        cond.notify()


class SessionLimits:
    """A loader's session limits, kept by the caller when it talks to a worker directly: 10114
    when neither a frame from the caller nor a result from the engine came for ``read_timeout``
    seconds, or the session lasted ``session_timeout`` (or the caller's shorter deadline); the
    messages are the loader front's."""

    __slots__ = ("read_timeout", "session_timeout")

    def __init__(self, read_timeout: float, session_timeout: float) -> None:
        self.read_timeout = read_timeout
        self.session_timeout = session_timeout

    def clock(self, deadline: float | None) -> tuple[SessionClock, float]:
        total = self.session_timeout
        if deadline and 0 < deadline < total:
            total = deadline
        return SessionClock(self.read_timeout, total), total

    def expired(self, exc: Expired, total: float) -> bytes:
        if exc.kind == "total":
            why = f"session longer than {total:g} s (session_timeout)"
        else:
            why = f"no frame for {self.read_timeout:g} s (read_timeout)"
        return wire.error_result(errors.TIMEOUT, f"timeout: {why}", status=Status.END)


class WireSession:
    """One session on the data port: ``await open()``, ``send``, ``recv``, ``close``.

    A result with status 2 or a non-zero code is the last one; ``send`` after it raises
    :class:`~ase_serving.errors.BadRequest` (10202).
    """

    def __init__(
        self,
        client: WireLoaderClient,
        first: Request,
        timeout: float | None,
        limits: SessionLimits | None = None,
    ) -> None:
        self.client = client
        self._first: Request | None = first
        self.timeout = timeout
        self.ended = False
        self._conn: _Conn | None = None
        self._id = 0
        self._results: asyncio.Queue[tuple[int, bytes, bool]] = asyncio.Queue()
        self._closed = False
        self._held = False
        self._limits = limits
        self._clock: SessionClock | None = None
        self._total = 0.0
        #: Why this side ended the session (sent with DESTROY): 10114 when the limits passed.
        self._why = 0
        #: The first answer, once :meth:`answered` looked at it.
        self._peeked: tuple[int, bytes, bool] | None = None

    async def open(self) -> None:
        """Open the session on the loader (sends the first frame). When the loader cannot be
        reached, ``ended`` is True afterwards and nothing reached a worker."""
        first, self._first = self._first, None
        if first is None:
            return
        got = await self.client._connection()
        if isinstance(got, str):
            self.ended = True
            self._results.put_nowait(
                (errors.NO_LOADER, wire.error_result(errors.NO_LOADER, got, status=Status.END), True)
            )
            return
        client = self.client
        if client.inflight < client.max_inflight:
            client.inflight += 1
        else:
            await client._wait_slot()
        self._held = True
        conn = self._conn = got
        if not conn.writable.is_set():
            await conn.writable.wait()
        self._id = next(self.client._ids) & 0xFFFFFFFF
        conn.sessions[self._id] = self
        if self._limits is not None:
            self._clock, self._total = self._limits.clock(self.timeout)
        conn.send(wire.OP_CREATE, self._id, wire.deadline_ms(self.timeout), wire.encode(first))

    async def refused(self) -> int:
        """After :meth:`open`: 10110 or 11503 when the loader refused the session at once (its
        first answer, left for :meth:`recv`), else 0."""
        code = await self.answered()
        return code if code in (errors.NO_LICENCE, errors.NO_LOADER) else 0

    async def answered(self) -> int:
        """Wait for the loader's first answer (left for :meth:`recv`) and return its code."""
        await self.open()
        if self._peeked is None:
            self._peeked = await self._next()
        return self._peeked[0]

    async def _next(self) -> tuple[int, bytes, bool]:
        if self._peeked is not None:
            item, self._peeked = self._peeked, None
            return item
        clock = self._clock
        if clock is None:
            return await self._results.get()
        try:
            item = await clock.get(self._results)
        except Expired as exc:
            assert self._limits is not None
            self._why = errors.TIMEOUT
            return errors.TIMEOUT, self._limits.expired(exc, self._total), True
        clock.touch()
        return item

    def _push(self, code: int, payload: bytes, end: bool) -> None:
        if end and self._conn is not None:
            self._conn.sessions.pop(self._id, None)
        self._results.put_nowait((code, payload, end))

    async def send(self, status: int, items: Iterable[DataItem] = ()) -> None:
        if self.ended:
            raise errors.frame_after_end()
        if self._first is not None:
            await self.open()
        conn = self._conn
        if self.ended or conn is None:
            return
        if not conn.writable.is_set():
            await conn.writable.wait()
        if self._clock is not None:
            self._clock.touch()
        # The only work on its connection: the frame leaves at once (it would be alone in the
        # loop turn's write anyway, and waiting for that turn is one more wake-up of this process).
        alone = len(conn.sessions) == 1 and not conn.pending
        conn.send(wire.OP_FRAME, self._id, 0, wire.encode(Frame(status, list(items))), now=alone)

    async def recv(self) -> Result | None:
        """The next result, None when the session is over."""
        if self._first is not None:
            await self.open()
        while True:
            if self._peeked is None and self._results.empty() and self._closed:
                return None
            code, payload, end = await self._next()
            if payload or end:  # a worker acknowledges each frame, with its results or none
                break
        res = wire.decode_result(payload) if payload else Result(code, status=Status.END)
        if end or code != 0 or res.status == Status.END:
            self.ended = True
        return res

    async def close(self) -> None:
        """End the session (the loader runs ``wrapperDestroy`` and frees the licence)."""
        self.ended = True
        if self._closed:
            return
        self._closed = True
        conn = self._conn
        if self._clock is not None:
            self._clock.close()
        # A loader front destroys a session that ended by itself; a worker called directly
        # (``limits``) keeps it until told, as it keeps one its front has not closed yet.
        known = conn is not None and conn.sessions.pop(self._id, None) is not None
        created = self._id != 0  # else cancelled before its create was sent
        if conn is not None and not conn.closed and (known or (self._limits is not None and created)):
            conn.send(wire.OP_DESTROY, self._id, self._why)
        if self._held:
            self._held = False
            self.client._free()
