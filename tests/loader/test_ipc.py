"""The supervisor <-> worker framing: frames survive any split of the byte stream."""

from __future__ import annotations

import socket
import threading

import pytest

from ase_serving import wire
from ase_serving.loader import ipc


def _collect(chunks: list[bytes]) -> list[tuple[int, int, int, int, bytes]]:
    out: list[tuple[int, int, int, int, bytes]] = []
    buf = wire.FrameBuffer()
    for chunk in chunks:
        buf.feed(chunk, lambda *frame: out.append(frame))
    return out


FRAMES = [
    (wire.OP_ONCE, 0, 1, 0, b"hello"),
    (wire.OP_SESSION_ACK, wire.FLAG_END, 2, 10114, b""),
    (wire.OP_ONCE_DONE, 0, 2**32 - 1, -5, bytes(range(256)) * 300),
]


def _stream() -> bytes:
    return b"".join(wire.pack(op, cid, code, payload, flags) for op, flags, cid, code, payload in FRAMES)


def test_frames_in_one_read() -> None:
    assert _collect([_stream()]) == FRAMES


def test_frames_split_at_every_size() -> None:
    data = _stream()
    for size in (1, 3, 16, 17, 1000, 65536):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert _collect(chunks) == FRAMES, size


@pytest.mark.timeout(20)
def test_blocking_channel_round_trip_with_many_writers() -> None:
    a, b = socket.socketpair()
    mux = ipc.Mux(ipc.BlockingChannel(a))
    peer = ipc.BlockingChannel(b)

    def read() -> tuple[int, int, int, int, bytes] | None:
        """The next frame from ``a`` as the worker reads it; None at EOF."""
        while not mux.frames:
            if not mux.fill():
                return None
        _chan, *frame = mux.frames.popleft()
        return tuple(frame)  # type: ignore[return-value]

    def writer(n: int) -> None:
        for i in range(50):
            peer.send(wire.OP_ONCE, n * 1000 + i, 0, b"x" * (i * 1000))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    seen = set()
    for _ in range(200):
        frame = read()
        assert frame is not None
        op, _flags, cid, _code, payload = frame
        assert op == wire.OP_ONCE and len(payload) == (cid % 1000) * 1000
        seen.add(cid)
    for t in threads:
        t.join(5)
    assert len(seen) == 200
    b.shutdown(socket.SHUT_WR)
    assert read() is None  # EOF
    a.close()
    b.close()
