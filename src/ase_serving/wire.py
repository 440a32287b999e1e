"""The lean wire: gateway <-> loader data port, and loader supervisor <-> worker.

One persistent stream connection (TCP, or a socketpair / Unix socket) carries many calls at once,
multiplexed by call id. Every frame is a 16-byte little-endian header and ``length`` payload
bytes::

    op (u8) | flags (u8) | reserved (u16) | call id (u32) | code (i32) | length (u32) | payload

* ``op``: what the frame is (the ``OP_*`` constants below; 60 and up are the LB service's, see
  :mod:`ase_serving.lb.lean`); ``flags``: ``FLAG_END`` on the last result of a session.
* ``call id``: chosen by the side that starts a call (a once call or a session); every answer
  carries it back. Ids are per connection: a relay (the loader front) rewrites only this field.
* ``code``: on an answer, the result's code (0 = ok), so a relay or a metrics counter never has
  to decode a payload; on a call (``OP_ONCE``, ``OP_CREATE``), the caller's deadline in
  milliseconds (0 = none).
* ``payload``: a MessagePack array of one of :mod:`ase_serving.protocol.items`' structs:
  ``Request`` (``OP_ONCE``, ``OP_CREATE``), ``Frame`` (``OP_FRAME``), ``Result`` (answers), or
  small control documents. At most :data:`MAX_PAYLOAD` bytes: a longer frame is a protocol error
  that closes the connection.

Data-port handshake (gateway <-> loader): the loader speaks first with ``OP_HELLO``, whose payload
is ``[WIRE_VERSION, nonce]``. An empty nonce means no proof is needed (a loopback port); otherwise
the caller must answer ``OP_AUTH`` with HMAC-SHA256(cluster secret, b"ase-wire-v1" + nonce) and
wait for ``OP_AUTH_OK`` before any call; a wrong or missing proof gets ``OP_AUTH_FAILED`` (payload:
why) and the connection is closed. The supervisor <-> worker socketpair has no handshake.

A worker's own Unix socket (a gateway on the loader's host calls it directly) speaks the same
calls and greeting as the data port, without a proof (the socket's folder is the user's own); the
worker answers ``OP_CREATE`` and every ``OP_FRAME`` with ``OP_SESSION_ACK`` (the frame's results,
or an empty payload when it had none) and async results with ``OP_SESSION_PUSH``; it keeps a
session until the caller's ``OP_DESTROY``, also after its last result, and ends a caller's
sessions when its connection goes away. The data port (the loader front) sends every result as
``OP_SESSION_PUSH`` and destroys a session that ended by itself.

This module is the codec (the worker, which has no event loop, imports only this);
:class:`ase_serving.wire_stream.Connection` is the wire on an asyncio transport, whose writes are
coalesced: the frames written during one event-loop turn leave in one ``send``.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
from collections.abc import Callable

import msgspec

from ase_serving.protocol.items import Frame, Request, Result, Status

HEADER = struct.Struct("<BBHIiI")
HEADER_SIZE = HEADER.size
WIRE_VERSION = 1
#: The largest payload either way (images and audio; the gateway checks its own limits first).
MAX_PAYLOAD = 256 * 1024 * 1024

# caller -> callee (gateway -> loader front -> worker)
OP_ONCE = 1  # call id; code: deadline ms; payload: Request
OP_CREATE = 2  # call id = session id; code: deadline ms; payload: the first frame as a Request
OP_FRAME = 3  # session id; payload: Frame
OP_DESTROY = 4  # session id; code: why the caller ended it (0, or 10114); wrapperDestroy runs
OP_FINI = 5  # supervisor -> worker only: run wrapperFini, answer, exit
OP_DRAIN = 6  # supervisor -> worker only: refuse new direct calls (11503), take no new callers

# worker -> supervisor only
OP_READY = 20  # payload: JSON {"pid", "modes"}
OP_INIT_FAILED = 21  # code + payload: the reason (UTF-8)
OP_SESSION_ACK = 23  # answer to CREATE/FRAME: code, flags, payload: Result or empty
OP_DESTROYED = 25  # answer to DESTROY
OP_FINI_DONE = 26  # code + payload: the reason when wrapperFini failed
OP_STATS = 27  # payload: JSON {"busy", "codes", "seconds"}: the worker's direct calls since the last

# callee -> caller
OP_ONCE_DONE = 22  # call id, code, payload: Result
OP_SESSION_PUSH = 24  # a session result: code, flags (FLAG_END on the last), payload: Result

# data-port handshake
OP_HELLO = 40  # loader -> caller, first frame: [WIRE_VERSION, nonce]
OP_AUTH = 41  # caller -> loader: the HMAC proof
OP_AUTH_OK = 42
OP_AUTH_FAILED = 43  # payload: why (UTF-8); the loader closes the connection

FLAG_END = 1

_ENC = msgspec.msgpack.Encoder()
encode = _ENC.encode
decode_request = msgspec.msgpack.Decoder(Request).decode
decode_result = msgspec.msgpack.Decoder(Result).decode
decode_frame = msgspec.msgpack.Decoder(Frame).decode
_decode_hello = msgspec.msgpack.Decoder(tuple[int, bytes]).decode


def pack(op: int, call_id: int, code: int = 0, payload: bytes = b"", flags: int = 0) -> bytes:
    """Header + payload as one bytes object."""
    return HEADER.pack(op, flags, 0, call_id, code, len(payload)) + payload


def error_result(code: int, message: str, sid: str = "", status: int = Status.ONCE) -> bytes:
    """An encoded :class:`Result` carrying only an error."""
    return encode(Result(code=code, message=message, sid=sid, status=status))


def deadline_ms(timeout: float | None) -> int:
    """A timeout in seconds as the header's deadline field (0 = none; at least 1 ms)."""
    if timeout is None or timeout <= 0:
        return 0
    return max(1, min(int(timeout * 1000), 2**31 - 1))


def proof(secret: bytes, nonce: bytes) -> bytes:
    """The handshake's answer to ``nonce``."""
    # Imported here: hashlib loads OpenSSL's libcrypto, 3.6 MB of a worker, which never proves.
    import hashlib
    import hmac

    return hmac.new(secret, b"ase-wire-v1" + nonce, hashlib.sha256).digest()


class ProtocolError(Exception):
    """The peer sent something that is not this wire (a frame too large, a bad handshake)."""


#: (op, flags, call id, code, payload)
FrameHandler = Callable[[int, int, int, int, bytes], None]


class FrameBuffer:
    """Incremental frame parser: feed it what a read returned, get whole frames."""

    def __init__(self, limit: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self.limit = limit

    def feed(self, data: bytes, handle: FrameHandler) -> None:
        """Add received bytes and call ``handle`` for every complete frame.

        Raises :class:`ProtocolError` for a frame longer than ``limit``."""
        buf = self._buf
        if not buf and len(data) >= HEADER_SIZE:
            # Common case: the read holds one or more whole frames; no copy into the buffer.
            pos = 0
            end = len(data)
            while end - pos >= HEADER_SIZE:
                op, flags, _, call_id, code, length = HEADER.unpack_from(data, pos)
                if length > self.limit:
                    raise ProtocolError(f"frame of {length} bytes is over the limit of {self.limit}")
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
            if length > self.limit:
                raise ProtocolError(f"frame of {length} bytes is over the limit of {self.limit}")
            stop = HEADER_SIZE + length
            if len(buf) < stop:
                break
            payload = bytes(buf[HEADER_SIZE:stop])
            del buf[:stop]
            handle(op, flags, call_id, code, payload)

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held now."""
        return len(self._buf)


@functools.lru_cache(maxsize=1)
def host_id() -> str:
    """This host (and container): the hostname and the kernel's boot id. A loader registers it
    with its Unix socket; a gateway with the same id may use that socket instead of TCP."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


def uds_path(name: str) -> str:
    """Where a loader's data port listens on a Unix socket: a folder of this user's, 0700."""
    import os
    import tempfile

    folder = os.path.join(tempfile.gettempdir(), f"ase-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    _sweep(folder)
    return os.path.join(folder, f"{name}-{os.getpid()}.sock")


def _sweep(folder: str) -> None:
    """Remove the sockets of loaders that are gone (killed ones leave theirs behind): names end
    in ``-<pid>.sock`` or ``-<pid>-w<index>.sock``."""
    import os
    import re

    pattern = re.compile(r"-(\d+)(?:-w\d+)?\.sock$")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        found = pattern.search(name)
        if found is None:
            continue
        try:
            os.kill(int(found.group(1)), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
        except (OSError, OverflowError):
            pass  # alive (another user's pid: not ours to judge) or not a pid


def hello(nonce: bytes) -> bytes:
    """The payload of ``OP_HELLO``."""
    return encode((WIRE_VERSION, nonce))


def read_hello(payload: bytes) -> bytes:
    """The nonce of an ``OP_HELLO`` payload (empty: no proof needed)."""
    try:
        version, nonce = _decode_hello(payload)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"not an ASE wire greeting: {exc}") from None
    if version != WIRE_VERSION:
        raise ProtocolError(f"the loader speaks wire version {version}, this side {WIRE_VERSION}")
    return nonce


def describe(exc: BaseException | None) -> str:
    if exc is None:
        return "closed by the peer"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
