"""The LB service's lean-wire port: Pick, Release, Report, Nodes and Health on :mod:`ase_serving.wire`.

What a gateway started with ``--lb HOST:PORT`` calls (default port 2393; the gRPC port, 2391, stays
for interop and ``asectl cluster status``). One persistent TCP connection per gateway process
carries many calls at once, multiplexed by call id; every frame is wire.py's 16-byte header and a
MessagePack payload (the structs below, encoded as arrays). The client is
:class:`~ase_serving.lb.wire_client.LbWireClient`.

Both ends open with wire.py's ``OP_HELLO``, ``[WIRE_VERSION, b""]`` (no proof asked: the gRPC port
asks none either); a side that sees another version closes the connection, and a client pointed at
another port (the gRPC one, which answers the greeting with HTTP/2 and closes) says so at once.
The LB's op numbers start at 60, clear of wire.py's (1..43):

====  =================  ==========================================================================
op    name               frame
====  =================  ==========================================================================
60    ``OP_LB_PICK``     call id; payload :class:`PickCall` ``[service, version, n, exclude]``
61    ``OP_LB_RELEASE``  call id 0, never answered; payload ``[Release, ...]``: the releases the
                         client queued in one loop turn, applied in order (after every pick that
                         came before them on the connection, so never before the pick they free)
62    ``OP_LB_REPORT``   call id; payload :class:`ReportCall`
63    ``OP_LB_NODES``    call id; payload :class:`NodesCall` (``""`` = every service / version)
64    ``OP_LB_HEALTH``   call id; no payload
70    ``OP_LB_ANSWER``   the answer to a call: its call id; code 0 and the result (a pick: the
                         addresses, ``[str, ...]``; Nodes: :class:`NodesAnswer`; Health:
                         :class:`HealthAnswer`; Report: nothing), or a code and the message (a
                         MessagePack string): 11503 / 10110 when a pick finds no loader / no licence,
                         10163 for a call the LB cannot read
====  =================  ==========================================================================

A frame with an op not in this table closes the connection (it is not this protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ase_serving import errors, wire
from ase_serving.errors import AseError
from ase_serving.wire_stream import Connection

if TYPE_CHECKING:
    from ase_serving.lb.service import LbService

log = logging.getLogger("ase_serving.lb")

DEFAULT_WIRE_PORT = 2393
#: The largest payload either way (a Nodes answer of thousands of instances fits many times over).
MAX_PAYLOAD = 16 * 1024 * 1024

OP_LB_PICK = 60
OP_LB_RELEASE = 61
OP_LB_REPORT = 62
OP_LB_NODES = 63
OP_LB_HEALTH = 64
OP_LB_ANSWER = 70


class PickCall(msgspec.Struct, array_like=True, omit_defaults=True):
    service: str
    version: str
    n: int = 1
    #: Addresses the caller found broken: never returned.
    exclude: list[str] = []


class Release(msgspec.Struct, array_like=True):
    service: str
    version: str
    address: str


class ReportCall(msgspec.Struct, array_like=True, omit_defaults=True):
    service: str
    version: str
    address: str
    total: int = 0
    idle: int = 0
    #: Preferred concurrency; 0 = total.
    best: int = 0
    live: bool = True
    #: Forget this node (the loader stopped).
    remove: bool = False


class NodesCall(msgspec.Struct, array_like=True, omit_defaults=True):
    service: str = ""
    version: str = ""


#: One node as :class:`~ase_serving.lb.balancer.NodeInfo`'s fields, in order.
NodeRow = tuple[str, str, str, int, int, int, bool, int, int, float]


class NodesAnswer(msgspec.Struct, array_like=True):
    strategy: str
    nodes: list[NodeRow]


class HealthAnswer(msgspec.Struct, array_like=True):
    status: str
    strategy: str
    nodes: int
    #: The config centre the LB is fed from, or "" (Report calls only).
    registry: str
    registry_connected: bool


encode = wire.encode
decode_pick = msgspec.msgpack.Decoder(PickCall).decode
decode_releases = msgspec.msgpack.Decoder(list[Release]).decode
decode_report = msgspec.msgpack.Decoder(ReportCall).decode
decode_nodes_call = msgspec.msgpack.Decoder(NodesCall).decode
decode_addresses = msgspec.msgpack.Decoder(list[str]).decode
decode_message = msgspec.msgpack.Decoder(str).decode
decode_nodes = msgspec.msgpack.Decoder(NodesAnswer).decode
decode_health = msgspec.msgpack.Decoder(HealthAnswer).decode

_HELLO = wire.hello(b"")
_NOTHING = b""


class _Conn(Connection):
    """One gateway's connection to the LB's wire port."""

    def __init__(self, server: LbWireServer) -> None:
        super().__init__()
        self.frames = wire.FrameBuffer(MAX_PAYLOAD)
        self.server = server
        self.service = server.service
        self.balancer = server.service.balancer
        self.calls: dict[int, Callable[[bytes], bytes]] = {
            OP_LB_REPORT: self._report,
            OP_LB_NODES: self._nodes,
            OP_LB_HEALTH: self._health,
        }

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server.conns.add(self)
        self.send(wire.OP_HELLO, 0, 0, _HELLO)

    def on_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)

    # A caller that does not read its answers gets no more of its calls read until it does.
    def pause_writing(self) -> None:
        super().pause_writing()
        if transport := self.transport:
            transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if transport := self.transport:
            transport.resume_reading()

    def on_frame(self, op: int, flags: int, call_id: int, code: int, payload: bytes) -> None:
        if op == OP_LB_PICK:
            try:
                call = decode_pick(payload)
                got = self.balancer.pick(call.service, call.version, call.n, call.exclude)
            except AseError as exc:
                self.send(OP_LB_ANSWER, call_id, exc.code, encode(exc.message))
            except msgspec.DecodeError as exc:
                self._bad(call_id, op, exc)
            else:
                self.send(OP_LB_ANSWER, call_id, 0, encode(got))
        elif op == OP_LB_RELEASE:
            try:
                batch = decode_releases(payload)
            except msgspec.DecodeError as exc:
                log.warning("lean wire: a release batch the LB cannot read was dropped: %s", exc)
                return
            release = self.balancer.release
            for r in batch:
                release(r.service, r.version, r.address)
        elif op == wire.OP_HELLO:
            try:
                wire.read_hello(payload)
            except wire.ProtocolError as exc:
                log.warning("lean wire: closing a connection whose greeting is wrong: %s", exc)
                self.abort()
        else:
            handler = self.calls.get(op)
            if handler is None:
                log.warning("lean wire: closing a connection that sent op %d (not an LB call)", op)
                self.abort()
                return
            try:
                self.send(OP_LB_ANSWER, call_id, 0, handler(payload))
            except AseError as exc:
                self.send(OP_LB_ANSWER, call_id, exc.code, encode(exc.message))
            except msgspec.DecodeError as exc:
                self._bad(call_id, op, exc)

    def _bad(self, call_id: int, op: int, exc: Exception) -> None:
        message = f"the LB cannot read this call (op {op}): {exc}"
        self.send(OP_LB_ANSWER, call_id, errors.SCHEMA_MISMATCH, encode(message))

    def _report(self, payload: bytes) -> bytes:
        r = decode_report(payload)
        self.service.apply_report(r.service, r.version, r.address, r.total, r.idle, r.best, r.live, r.remove)
        return _NOTHING

    def _nodes(self, payload: bytes) -> bytes:
        q = decode_nodes_call(payload) if payload else NodesCall()
        found = self.balancer.nodes(q.service or None, q.version or None)
        rows: list[Any] = [dataclasses.astuple(n) for n in found]
        return encode(NodesAnswer(self.balancer.strategy_name, rows))

    def _health(self, _payload: bytes) -> bytes:
        return encode(HealthAnswer(**self.service.health_doc()))


class LbWireServer:
    """The lean-wire port of one LB service (the Balancer of ``service``); ``port`` 0: a free one,
    known once :meth:`start` returned."""

    def __init__(self, service: LbService, host: str, port: int) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.conns: set[_Conn] = set()
        self._listening: asyncio.Server | None = None

    async def start(self) -> int:
        """Bind and listen (OSError when the port is taken); the port bound."""
        listening = await asyncio.get_running_loop().create_server(
            lambda: _Conn(self), self.host.strip("[]"), self.port, reuse_address=True, backlog=1024
        )
        self._listening = listening
        self.port = listening.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop listening; every connection is closed after what it has queued is written."""
        listening, self._listening = self._listening, None
        if listening is not None:
            listening.close()
        for conn in list(self.conns):
            conn.close()
        if listening is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listening.wait_closed(), 2.0)
