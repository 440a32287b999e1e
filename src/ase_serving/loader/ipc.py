"""The supervisor <-> worker end of the lean wire (:mod:`ase_serving.wire`) on a socketpair.

The frame layout, the ops and :class:`FrameBuffer` are the wire's; payloads are MessagePack
``Request``/``Frame``/``Result`` arrays passed through untouched by the supervisor, or small JSON
documents for control frames. The ``code`` travels in the header so the supervisor can count
results by code without decoding a payload. This module adds the worker's blocking channel.
"""

from __future__ import annotations

import collections
import socket
import threading

from ase_serving.wire import HEADER, FrameBuffer

#: Payloads up to this size are joined with their header into one send() (one syscall).
_JOIN_LIMIT = 1 << 16
#: The most one read takes from the socket.
_READ_SIZE = 1 << 18


class BlockingChannel:
    """The worker's end of the socketpair: blocking reads, writes under a lock.

    :meth:`fill` reads what the socket has (blocking until something comes) and parses it into
    :attr:`frames`; one thread at a time reads (``read_lock``). Any thread may :meth:`send`
    (the serving threads, wrapper threads pushing callbacks). A thread that :meth:`hold` s keeps
    its frames until :meth:`flush`: the answers to a batch of calls leave in one send.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames: collections.deque[tuple[int, int, int, int, bytes]] = collections.deque()
        self._parser = FrameBuffer()
        # One receive buffer for every read: ``recv(n)`` would allocate n bytes per call, which
        # above malloc's mmap threshold is an mmap, an mremap and a munmap (and page faults) per read.
        self._rbuf = bytearray(_READ_SIZE)
        self._rview = memoryview(self._rbuf)
        self.read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._held = threading.local()

    def fill(self) -> bool:
        """Read once (blocking) and queue the whole frames in :attr:`frames`; False at EOF."""
        with self.read_lock:
            if self.frames:
                return True
            n = self.sock.recv_into(self._rbuf)
            if not n:
                return False
            self._parser.feed(self._rview[:n].tobytes(), self._add)
            return True

    def _add(self, op: int, flags: int, call_id: int, code: int, payload: bytes) -> None:
        self.frames.append((op, flags, call_id, code, payload))

    def read(self) -> tuple[int, int, int, int, bytes] | None:
        """The next frame as (op, flags, call id, code, payload); None at EOF."""
        while not self.frames:
            if not self.fill():
                return None
        return self.frames.popleft()

    def hold(self) -> None:
        """Keep this thread's frames until :meth:`flush`."""
        if getattr(self._held, "out", None) is None:
            self._held.out = []

    def flush(self) -> None:
        """Send what this thread held, in one write, and stop holding."""
        out = getattr(self._held, "out", None)
        self._held.out = None
        if out:
            with self._write_lock:
                self.sock.sendall(b"".join(out))

    def send(self, op: int, call_id: int, code: int, payload: bytes = b"", flags: int = 0) -> None:
        head = HEADER.pack(op, flags, 0, call_id, code, len(payload))
        out = getattr(self._held, "out", None)
        if out is not None and len(payload) <= _JOIN_LIMIT:
            out.append(head)
            out.append(payload)
            return
        with self._write_lock:
            if len(payload) <= _JOIN_LIMIT:
                self.sock.sendall(head + payload)
            else:
                self.sock.sendall(head)
                self.sock.sendall(payload)
