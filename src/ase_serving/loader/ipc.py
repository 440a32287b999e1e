"""The supervisor <-> worker end of the lean wire (:mod:`ase_serving.wire`) on a socketpair.

The frame layout, the ops and :class:`FrameBuffer` are the wire's; payloads are MessagePack
``Request``/``Frame``/``Result`` arrays passed through untouched by the supervisor, or small JSON
documents for control frames. The ``code`` travels in the header so the supervisor can count
results by code without decoding a payload. This module adds the worker's blocking channel.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import socket
import threading
from collections.abc import Callable

from ase_serving.wire import HEADER, FrameBuffer, ProtocolError

#: Payloads up to this size are joined with their header into one send() (one syscall).
_JOIN_LIMIT = 1 << 16
#: The most one read takes from the socket.
_READ_SIZE = 1 << 18


class BlockingChannel:
    """One end of a worker's socket (the supervisor's socketpair, or a direct caller's connection):
    blocking reads, writes under a lock.

    :meth:`receive` reads what the socket has and hands over the whole frames; :class:`Mux`
    decides which channel to read and one thread at a time reads. Any thread may :meth:`send`
    (the serving threads, wrapper threads pushing callbacks). A thread that :meth:`hold` s keeps
    its frames until :meth:`flush`: the answers to a batch of calls leave in one send.
    """

    def __init__(self, sock: socket.socket, direct: bool = False) -> None:
        self.sock = sock
        #: A gateway's direct connection (once calls and sessions), not the supervisor's socketpair.
        self.direct = direct
        #: A direct channel whose gateway went away or stopped reading (see :meth:`send`).
        self.closed = False
        self._parser = FrameBuffer()
        # One receive buffer for every read: ``recv(n)`` would allocate n bytes per call, which
        # above malloc's mmap threshold is an mmap, an mremap and a munmap (and page faults) per read.
        self._rbuf = bytearray(_READ_SIZE)
        self._rview = memoryview(self._rbuf)
        self._write_lock = threading.Lock()
        self._held = threading.local()

    def receive(self, handle: Callable[[int, int, int, int, bytes], None]) -> bool:
        """Read once (blocking) and call ``handle`` for every whole frame; False at EOF.

        Raises OSError when the socket fails, :class:`ProtocolError` for a malformed stream."""
        n = self.sock.recv_into(self._rbuf)
        if not n:
            return False
        self._parser.feed(self._rview[:n].tobytes(), handle)
        return True

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
                self._sendall(b"".join(out))

    def send(self, op: int, call_id: int, code: int, payload: bytes = b"", flags: int = 0) -> None:
        head = HEADER.pack(op, flags, 0, call_id, code, len(payload))
        out = getattr(self._held, "out", None)
        if out is not None and len(payload) <= _JOIN_LIMIT:
            out.append(head)
            out.append(payload)
            return
        with self._write_lock:
            if len(payload) <= _JOIN_LIMIT:
                self._sendall(head + payload)
            else:
                self._sendall(head)
                self._sendall(payload)

    def _sendall(self, data: bytes) -> None:
        if not self.direct:
            self.sock.sendall(data)  # an OSError here: the supervisor is gone (the worker ends)
            return
        # A gateway that went away, or stopped reading for DIRECT_SEND_TIMEOUT, loses its channel
        # (its calls end with 10911 on its side); the worker and its other callers go on.
        if self.closed:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self.hang_up()

    def hang_up(self) -> None:
        """End a direct caller's connection (the thread reading drops it at its EOF)."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


#: Not on the wire: the op of the frame :class:`Mux` queues after a direct caller's last one when
#: that caller went away (its sessions are destroyed in order, after what it sent before).
OP_HUNG_UP = -1

#: Seconds a worker waits for a direct caller to take an answer before it drops that caller.
DIRECT_SEND_TIMEOUT = 10.0

Frame = tuple[BlockingChannel, int, int, int, int, bytes]


class Mux:
    """What a worker reads: the supervisor's socketpair and, when it has a direct socket, the
    gateways connected there. One thread at a time reads (:meth:`fill`, under ``read_lock``):
    it waits for any of them and queues their whole frames in :attr:`frames`, each with its
    channel, so that the answer goes back where the call came from."""

    def __init__(
        self,
        supervisor: BlockingChannel,
        listener: socket.socket | None = None,
        on_accept: Callable[[BlockingChannel], None] = lambda chan: None,
    ) -> None:
        self.supervisor = supervisor
        self.frames: collections.deque[Frame] = collections.deque()
        self.read_lock = threading.Lock()
        self.on_accept = on_accept
        self._poll = select.poll()
        self._chans: dict[int, BlockingChannel] = {supervisor.sock.fileno(): supervisor}
        self._poll.register(supervisor.sock.fileno(), select.POLLIN)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._poll.register(self._wake_r, select.POLLIN)
        self.listener = listener
        self._close_listener = False
        if listener is not None:
            listener.setblocking(False)
            self._poll.register(listener.fileno(), select.POLLIN)

    @property
    def direct_channels(self) -> int:
        return len(self._chans) - 1

    def stop_listening(self) -> None:
        """No new direct callers (draining); any thread may call it."""
        self._close_listener = True
        self.wake()

    def wake(self) -> None:
        """Make the thread waiting in :meth:`fill` look again."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def fill(self) -> bool:
        """Wait until a socket has data and queue its whole frames; False at the supervisor's EOF."""
        with self.read_lock:
            if self.frames:
                return True
            if self._close_listener and self.listener is not None:
                path = self.listener.getsockname()
                self._poll.unregister(self.listener.fileno())
                self.listener.close()
                self.listener = None
                with contextlib.suppress(OSError):
                    os.unlink(path)
            for fd, _events in self._poll.poll():
                if fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                elif self.listener is not None and fd == self.listener.fileno():
                    self._accept()
                else:
                    chan = self._chans.get(fd)
                    if chan is not None and not self._read(chan):
                        if chan is self.supervisor:
                            return False
                        self._drop(chan)
            return True

    def _read(self, chan: BlockingChannel) -> bool:
        if chan.closed:
            return False

        def add(op: int, flags: int, call_id: int, code: int, payload: bytes) -> None:
            self.frames.append((chan, op, flags, call_id, code, payload))

        try:
            return chan.receive(add)
        except OSError:
            return False
        except ProtocolError:
            if chan is self.supervisor:
                raise
            return False

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except OSError:  # the caller gave up meanwhile
            return
        sock.setblocking(True)
        sock.settimeout(DIRECT_SEND_TIMEOUT)
        chan = BlockingChannel(sock, direct=True)
        self._chans[sock.fileno()] = chan
        self._poll.register(sock.fileno(), select.POLLIN)
        self.on_accept(chan)

    def _drop(self, chan: BlockingChannel) -> None:
        fd = chan.sock.fileno()
        if fd >= 0:
            self._poll.unregister(fd)
            self._chans.pop(fd, None)
        chan.closed = True
        chan.sock.close()
        self.frames.append((chan, OP_HUNG_UP, 0, 0, 0, b""))
