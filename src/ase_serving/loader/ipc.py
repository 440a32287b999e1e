"""The supervisor <-> worker wire: frames on a ``socket.socketpair()``.

Every frame is a 16-byte header followed by ``length`` payload bytes::

    op (u8) | flags (u8) | reserved (u16) | call id (u32) | code (i32) | length (u32)

Payloads are serialized protobuf messages of ``loader.proto`` (OnceRequest/OnceResponse,
SessionRequest/SessionResponse) passed through untouched, or small JSON documents for control
frames. The ``code`` travels in the header so the supervisor can count results by code without
parsing a payload: the hot path never decodes a message in the supervisor.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

HEADER = struct.Struct("<BBHIiI")
HEADER_SIZE = HEADER.size

# supervisor -> worker
OP_ONCE = 1  # payload: OnceRequest bytes
OP_CREATE = 2  # call id: session id; payload: the first SessionRequest
OP_FRAME = 3  # call id: session id; payload: a SessionRequest
OP_DESTROY = 4  # call id: session id
OP_FINI = 5  # run wrapperFini, answer, exit

# worker -> supervisor
OP_READY = 20  # payload: JSON {"pid", "modes"}
OP_INIT_FAILED = 21  # code + payload: the reason (UTF-8)
OP_ONCE_DONE = 22  # call id, code, payload: OnceResponse bytes
OP_SESSION_ACK = 23  # answer to CREATE/FRAME: code, flags, payload: SessionResponse bytes or empty
OP_SESSION_PUSH = 24  # an async result (callback): code, flags, payload: SessionResponse bytes
OP_DESTROYED = 25  # answer to DESTROY
OP_FINI_DONE = 26  # code + payload: the reason when wrapperFini failed

#: flags
FLAG_END = 1  # the session ended with this frame

#: Payloads up to this size are joined with their header into one send() (one syscall).
_JOIN_LIMIT = 1 << 16


def pack(op: int, call_id: int, code: int, payload: bytes, flags: int = 0) -> bytes:
    """Header + payload as one bytes object."""
    return HEADER.pack(op, flags, 0, call_id, code, len(payload)) + payload


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


#: (op, flags, call id, code, payload)
FrameHandler = Callable[[int, int, int, int, bytes], None]


class FrameBuffer:
    """Incremental frame parser for the supervisor's non-blocking reads."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes, handle: FrameHandler) -> None:
        """Add received bytes and call ``handle`` for every complete frame."""
        buf = self._buf
        if not buf and len(data) >= HEADER_SIZE:
            # Common case: the read holds exactly one or more whole frames; avoid copying.
            pos = 0
            end = len(data)
            while end - pos >= HEADER_SIZE:
                op, flags, _, call_id, code, length = HEADER.unpack_from(data, pos)
                stop = pos + HEADER_SIZE + length
                if stop > end:
                    break
                handle(op, flags, call_id, code, data[pos + HEADER_SIZE : stop])
                pos = stop
            if pos < end:
                buf += data[pos:]
            return
        buf += data
        while len(buf) >= HEADER_SIZE:
            op, flags, _, call_id, code, length = HEADER.unpack_from(buf, 0)
            stop = HEADER_SIZE + length
            if len(buf) < stop:
                break
            payload = bytes(buf[HEADER_SIZE:stop])
            del buf[:stop]
            handle(op, flags, call_id, code, payload)
