"""The supervisor's end of one worker's socketpair, on the event loop: the I/O of a
:class:`~ase_serving.loader.pool.WorkerProc`.

Frames sent in one loop turn leave in one ``sendmsg``; what the socket does not take waits for it
to be writable. What comes in is cut into frames (the lean wire, :mod:`ase_serving.wire`) for
``on_frame``; ``on_eof`` is called once when the worker closes its end (or dies).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from ase_serving import wire

FrameSink = Callable[[int, int, int, int, bytes], None]


class WorkerChannel:
    """A non-blocking socket read with ``loop.add_reader``; closed by :meth:`close`."""

    def __init__(
        self,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        on_frame: FrameSink,
        on_eof: Callable[[], None],
    ) -> None:
        sock.setblocking(False)
        self.sock: socket.socket | None = sock
        self.loop = loop
        self._on_frame = on_frame
        self._on_eof = on_eof
        self._frames = wire.FrameBuffer()
        self._wbuf = bytearray()
        self._out: list[bytes] = []
        loop.add_reader(sock.fileno(), self._on_readable)

    def send(self, op: int, call_id: int, payload: bytes = b"", code: int = 0) -> None:
        """Queue a frame; the frames of one loop turn leave in one send (see :meth:`_write`)."""
        if self.sock is None:
            return
        out = self._out
        if not out:
            self.loop.call_soon(self._write)
        out.append(wire.HEADER.pack(op, 0, 0, call_id, code, len(payload)))
        if payload:
            out.append(payload)

    def close(self) -> None:
        sock = self.sock
        if sock is None:
            return
        self.loop.remove_reader(sock.fileno())
        if self._wbuf:
            self.loop.remove_writer(sock.fileno())
        sock.close()
        self.sock = None

    def _write(self) -> None:
        out = self._out
        sock = self.sock
        if not out or sock is None:
            out.clear()
            return
        if self._wbuf:  # still waiting for the socket to take the last write
            for part in out:
                self._wbuf += part
            out.clear()
            return
        try:
            n = sock.sendmsg(out) if len(out) <= 512 else sock.send(b"".join(out))
        except BlockingIOError:
            n = 0
        except OSError:
            out.clear()
            return  # the worker is gone; the reader sees EOF and ends its calls
        total = sum(len(p) for p in out)
        if n < total:
            self._wbuf += b"".join(out)[n:]
            self.loop.add_writer(sock.fileno(), self._flush)
        out.clear()

    def _flush(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            n = sock.send(self._wbuf)
        except BlockingIOError:
            return
        except OSError:
            self._wbuf.clear()
            n = 0
        del self._wbuf[:n]
        if not self._wbuf:
            self.loop.remove_writer(sock.fileno())

    def _on_readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            data = sock.recv(1 << 18)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._on_eof()
            return
        self._frames.feed(data, self._on_frame)
