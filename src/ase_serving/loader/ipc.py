"""The supervisor <-> worker end of the lean wire (:mod:`ase_serving.wire`) on a socketpair.

The frame layout, the ops and :class:`FrameBuffer` are the wire's; payloads are MessagePack
``Request``/``Frame``/``Result`` arrays passed through untouched by the supervisor, or small JSON
documents for control frames. The ``code`` travels in the header so the supervisor can count
results by code without decoding a payload. This module adds the worker's blocking channel.
"""

from __future__ import annotations

import socket
import threading

from ase_serving.wire import (  # noqa: F401  (re-exported: the ops of this hop)
    FLAG_END,
    HEADER,
    HEADER_SIZE,
    OP_CREATE,
    OP_DESTROY,
    OP_DESTROYED,
    OP_FINI,
    OP_FINI_DONE,
    OP_FRAME,
    OP_INIT_FAILED,
    OP_ONCE,
    OP_ONCE_DONE,
    OP_READY,
    OP_SESSION_ACK,
    OP_SESSION_PUSH,
    FrameBuffer,
    FrameHandler,
    pack,
)

#: Payloads up to this size are joined with their header into one send() (one syscall).
_JOIN_LIMIT = 1 << 16


class BlockingChannel:
    """The worker's end: blocking reads by one thread at a time, writes under a lock.

    Any thread may call :meth:`send` (request threads, wrapper threads pushing callbacks).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._rfile = sock.makefile("rb", buffering=1 << 16)
        self.read_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def read(self) -> tuple[int, int, int, int, bytes] | None:
        """The next frame as (op, flags, call id, code, payload); None at EOF. Hold ``read_lock``."""
        head = self._rfile.read(HEADER_SIZE)
        if len(head) < HEADER_SIZE:
            return None
        op, flags, _, call_id, code, length = HEADER.unpack(head)
        payload = self._rfile.read(length) if length else b""
        if len(payload) < length:
            return None
        return op, flags, call_id, code, payload

    def send(self, op: int, call_id: int, code: int, payload: bytes = b"", flags: int = 0) -> None:
        head = HEADER.pack(op, flags, 0, call_id, code, len(payload))
        with self._write_lock:
            if len(payload) <= _JOIN_LIMIT:
                self.sock.sendall(head + payload)
            else:
                self.sock.sendall(head)
                self.sock.sendall(payload)
