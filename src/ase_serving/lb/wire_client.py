"""The asyncio client of the LB service's lean-wire port (:mod:`ase_serving.lb.lean`).

    lb = LbWireClient("127.0.0.1:2393")
    addr = (await lb.pick("asr", "1.0"))[0]     # NoLoader / NoLicence as from a Balancer
    await lb.release("asr", "1.0", addr)        # queued: returns at once

What a gateway started with ``--lb`` uses (:class:`~ase_serving.gateway.picking.RemotePicker`):
the same calls as the gRPC :class:`~ase_serving.lb.client.LbClient`, on one persistent connection
opened on first use and again on the first call after it was lost; calls are multiplexed on it by
call id. An LB that cannot be reached, a connection lost with calls in flight, or no answer within
``timeout``: :class:`~ase_serving.errors.NoLoader` ("LB service at ADDRESS unreachable: why"),
as from LbClient.

Releases are batched: :meth:`LbWireClient.release` queues one and returns; the releases queued in
one loop turn leave in one frame, with that turn's other frames, and ahead of any call made after
them (the LB applies them first, as an in-process Balancer would). On one connection the LB reads
frames in order and a release is queued only after its pick was answered, so it is never applied
before the pick it frees. Releases queued while there is no connection wait for the next one (a
release starts it), and :meth:`LbWireClient.close` sends what is still queued. A pick whose caller
stopped waiting (timeout, cancelled) is released when its answer comes after all, so that
``loadMini`` does not count a licence nobody holds. Not covered: a batch written just before the
connection breaks, which the LB may never have read (a failed gRPC Release is lost the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Collection

from ase_serving import errors, wire
from ase_serving.addr import split_host_port
from ase_serving.errors import NoLoader, error_for
from ase_serving.lb import lean
from ase_serving.lb.balancer import NodeInfo
from ase_serving.lb.lean import HealthAnswer, NodesCall, PickCall, Release, ReportCall
from ase_serving.wire_stream import Connection

#: The code of a call that got no answer in time (never on the wire).
_EXPIRED = -1
_HELLO = wire.hello(b"")


class _Conn(Connection):
    def __init__(self, client: LbWireClient) -> None:
        super().__init__()
        self.frames = wire.FrameBuffer(lean.MAX_PAYLOAD)
        self.client = client
        self.pending: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        #: Picks whose caller stopped waiting: call id -> (service, version), released on answer.
        self.orphans: dict[int, tuple[str, str]] = {}
        #: "" once the LB's greeting came, else why the connection is not usable.
        self.ready: asyncio.Future[str] = self.loop.create_future()
        self.gone: asyncio.Future[None] = self.loop.create_future()
        self.live = False
        self.lost_why = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.send(wire.OP_HELLO, 0, 0, _HELLO)

    def on_frame(self, op: int, flags: int, call_id: int, code: int, payload: bytes) -> None:
        if op == lean.OP_LB_ANSWER:
            fut = self.pending.pop(call_id, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result((code, payload))
            elif call_id in self.orphans:
                service, version = self.orphans.pop(call_id)
                if code == 0:
                    self.client.release_nowait(service, version, lean.decode_addresses(payload)[0])
        elif op == wire.OP_HELLO and not self.ready.done():
            try:
                nonce = wire.read_hello(payload)
            except wire.ProtocolError as exc:
                self.abort(str(exc))
                return
            if nonce:
                self.abort("it asks for a proof: a loader's data port, not the LB")
                return
            self.live = True
            self.ready.set_result("")
        else:
            self.abort(f"unexpected frame (op {op})")

    def abort(self, why: str = "") -> None:
        self.lost_why = self.lost_why or why
        super().abort(why)

    def send_releases(self) -> None:
        """The queued releases, as one frame (once the LB greeted: they go nowhere else)."""
        client = self.client
        if client._releases and self.live and self.transport is not None:
            batch, client._releases = client._releases, []
            self.send(lean.OP_LB_RELEASE, 0, 0, lean.encode(batch))

    def _flush(self) -> None:
        self.send_releases()
        super()._flush()

    def on_lost(self, exc: Exception | None) -> None:
        client = self.client
        if not self.ready.done():
            why = self.lost_why or f"closed before the LB's greeting ({wire.describe(exc)})"
            self.ready.set_result(f"{why}: is {client.address} the LB's lean-wire port (--wire-port)?")
        if client._conn is self:
            client._conn = None
        why = client.unreachable(self.lost_why or f"connection lost ({wire.describe(exc)})")
        pending, self.pending = self.pending, {}
        self.orphans.clear()
        if pending:
            answer = lean.encode(why)
            for fut in pending.values():
                if not fut.done():
                    fut.set_result((errors.NO_LOADER, answer))
        if not self.gone.done():
            self.gone.set_result(None)
        if client._releases and not client.closing:
            client._deliver()


class LbWireClient:
    """A client of one LB service's lean-wire port (``host:port``); ``timeout`` bounds every call
    and the connection's opening (seconds)."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        try:
            self.host, self.port = split_host_port(address)
        except ValueError:
            raise ValueError(f"LB address {address!r} is not HOST:PORT") from None
        self.address = address
        self.timeout = timeout
        self.closing = False
        self._conn: _Conn | None = None
        self._opening: asyncio.Task[_Conn | str] | None = None
        self._delivery: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._releases: list[Release] = []

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self._conn is not None and not self._conn.closed

    @property
    def queued_releases(self) -> int:
        """Releases queued and not yet written."""
        return len(self._releases)

    def unreachable(self, why: str) -> str:
        return f"LB service at {self.address} unreachable: {why}"

    # -- the connection ---------------------------------------------------------------------
    async def _connection(self) -> _Conn:
        """The open connection (one opening at a time, shared); NoLoader when there is none."""
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        opening = self._opening
        if opening is None or opening.done():
            opening = self._opening = asyncio.get_running_loop().create_task(self._open())
        got = await asyncio.shield(opening)
        if isinstance(got, str):
            raise NoLoader(self.unreachable(got))
        return got

    async def _open(self) -> _Conn | str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            _t, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Conn(self), self.host, self.port), self.timeout
            )
        except asyncio.TimeoutError:
            return f"no connection within {self.timeout:g} s"
        except OSError as exc:  # asyncio says "Connect call failed (addr)": say why
            return os.strerror(exc.errno) if exc.errno else wire.describe(exc)
        try:
            why = await asyncio.wait_for(asyncio.shield(conn.ready), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            why = f"no greeting within {self.timeout:g} s: is it the LB's lean-wire port (--wire-port)?"
        if why:
            conn.abort(why)
            return why
        self._conn = conn
        if self._releases:
            loop.call_soon(conn._flush)
        return conn

    def _deliver(self) -> None:
        """Open a connection for the queued releases (in the background; no-op while one opens)."""
        if self._delivery is None or self._delivery.done():
            self._delivery = asyncio.get_running_loop().create_task(self._open_quietly())

    async def _open_quietly(self) -> None:
        with contextlib.suppress(NoLoader):  # the releases wait for the next call's connection
            await self._connection()

    # -- calls ------------------------------------------------------------------------------
    async def _call(
        self, op: int, payload: bytes, orphan: tuple[str, str] | None = None
    ) -> tuple[int, bytes]:
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connection()
        if not conn.writable.is_set():
            await conn.writable.wait()
            if conn.closed:
                raise NoLoader(self.unreachable(conn.lost_why or "connection lost"))
        if self._releases:
            conn.send_releases()  # released before this call, so applied before it
        call_id = next(self._ids) & 0xFFFFFFFF
        loop = conn.loop
        fut: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        conn.pending[call_id] = fut
        conn.send(op, call_id, 0, payload)
        timer = loop.call_later(self.timeout, _expire, fut)
        answered = False
        try:
            code, answer = await fut
            answered = code != _EXPIRED
        finally:
            timer.cancel()
            if not answered:
                conn.pending.pop(call_id, None)
                if orphan is not None and not conn.closed:
                    conn.orphans[call_id] = orphan
        if code == _EXPIRED:
            raise NoLoader(self.unreachable(f"no answer within {self.timeout:g} s"))
        if code:
            raise error_for(code, lean.decode_message(answer))
        return code, answer

    async def pick(self, service: str, version: str, n: int = 1, exclude: Collection[str] = ()) -> list[str]:
        """As :meth:`Balancer.pick <ase_serving.lb.balancer.Balancer.pick>`, over the network."""
        call = PickCall(service, version, n, list(exclude) if exclude else [])
        _code, answer = await self._call(lean.OP_LB_PICK, lean.encode(call), (service, version))
        return lean.decode_addresses(answer)

    async def release(self, service: str, version: str, address: str) -> None:
        """Queue a release (see the module's notes); returns at once."""
        self.release_nowait(service, version, address)

    def release_nowait(self, service: str, version: str, address: str) -> None:
        queue = self._releases
        queue.append(Release(service, version, address))
        conn = self._conn
        if conn is None or conn.closed:
            self._deliver()
        elif len(queue) == 1:
            conn.loop.call_soon(conn._flush)

    async def report(
        self,
        service: str,
        version: str,
        address: str,
        total: int,
        idle: int,
        best: int | None = None,
        live: bool = True,
    ) -> None:
        """As :meth:`Balancer.report <ase_serving.lb.balancer.Balancer.report>`."""
        call = ReportCall(service, version, address, total, idle, best or 0, live)
        await self._call(lean.OP_LB_REPORT, lean.encode(call))

    async def remove(self, service: str, version: str, address: str) -> None:
        await self._call(lean.OP_LB_REPORT, lean.encode(ReportCall(service, version, address, remove=True)))

    async def nodes(self, service: str | None = None, version: str | None = None) -> list[NodeInfo]:
        call = NodesCall(service or "", version or "")
        _code, answer = await self._call(lean.OP_LB_NODES, lean.encode(call))
        return [NodeInfo(*row) for row in lean.decode_nodes(answer).nodes]

    async def health(self) -> HealthAnswer:
        """The service's Health answer; :class:`NoLoader` when it cannot be reached."""
        _code, answer = await self._call(lean.OP_LB_HEALTH, b"")
        return lean.decode_health(answer)

    async def close(self) -> None:
        """Send the queued releases, then close the connection (later calls open a new one)."""
        self.closing = True
        try:
            if self._releases and not self.connected:
                with contextlib.suppress(NoLoader):  # nowhere to send them
                    await self._connection()
            conn = self._conn
            if conn is not None and not conn.closed:
                conn.lost_why = f"the client of the LB service at {self.address} was closed"
                conn.close()  # writes what is queued first
                try:
                    await asyncio.wait_for(asyncio.shield(conn.gone), self.timeout)
                except asyncio.TimeoutError:
                    conn.abort()
            self._conn = None
        finally:
            self.closing = False
            if self._delivery is not None and not self._delivery.done():
                self._delivery.cancel()

    async def __aenter__(self) -> LbWireClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


def _expire(fut: asyncio.Future[tuple[int, bytes]]) -> None:
    if not fut.done():
        fut.set_result((_EXPIRED, b""))
