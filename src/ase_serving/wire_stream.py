"""The lean wire (:mod:`ase_serving.wire`) on an asyncio (uvloop) transport.

Apart from the codec so that a loader worker, which reads its socket with blocking threads, does
not import asyncio (and ssl with it: 3.4 MB of every worker's memory).
"""

from __future__ import annotations

import asyncio
import logging
import socket

from ase_serving.wire import HEADER, FrameBuffer, ProtocolError

log = logging.getLogger("ase_serving.wire")


class Connection(asyncio.Protocol):
    """One end of a wire connection on an asyncio (uvloop) transport.

    Subclasses implement :meth:`on_frame` and :meth:`on_lost`. :meth:`send` queues a frame; the
    frames queued in one loop turn are written together. When the peer does not read (the
    transport's buffer is over its high-water mark) :attr:`writable` is cleared: callers that
    start new work wait on it, and a server stops reading new calls (:meth:`pause_writing`).
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.frames = FrameBuffer()
        self._out: list[bytes] = []
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed = False

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.frames.feed(data, self.on_frame)
        except ProtocolError as exc:
            peer = self.transport.get_extra_info("peername") if self.transport is not None else None
            log.warning("lean wire: closing the connection with %s: %s", peer, exc)
            self.abort(str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        self._out.clear()
        self.writable.set()  # nobody may wait forever on a dead connection
        self.on_lost(exc)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # -- sending ----------------------------------------------------------------------------
    def send(
        self, op: int, call_id: int, code: int = 0, payload: bytes = b"", flags: int = 0, now: bool = False
    ) -> None:
        """Queue a frame for the end of this loop turn; ``now`` writes it at once when nothing
        is queued (the loop turn a queued write waits for is one more wake-up of the process)."""
        transport = self.transport
        if transport is None:
            return
        out = self._out
        head = HEADER.pack(op, flags, 0, call_id, code, len(payload))
        if now and not out:
            transport.write(head + payload if payload else head)
            return
        if not out:
            self.loop.call_soon(self._flush)
        out.append(head)
        if payload:
            out.append(payload)

    def _flush(self) -> None:
        out = self._out
        if not out or self.transport is None:
            out.clear()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self.transport.write(data)

    def abort(self, why: str = "") -> None:
        """Close now (unsent frames are dropped)."""
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close after the queued frames are written."""
        if self.transport is not None:
            self._flush()
            self.transport.close()

    # -- for subclasses ---------------------------------------------------------------------
    def on_frame(self, op: int, flags: int, call_id: int, code: int, payload: bytes) -> None:
        raise NotImplementedError

    def on_lost(self, exc: Exception | None) -> None:
        pass
