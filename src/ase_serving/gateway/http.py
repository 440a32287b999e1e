"""The gateway's HTTP protocol: uvicorn's httptools protocol whose response head leaves with the
body in one ``send`` (see :class:`_Coalesced`). Named by import string in ``server.serve``."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ase_serving.errors import SlowClient
from ase_serving.gateway.answers import error_response


class _Coalesced:
    """A transport that holds a response's head until its body: one ``send`` per response.

    uvicorn writes a response's status line and headers, then its body: two system calls (and
    two TCP segments) per response. The head is held (no loop turn is spent on it) and leaves
    with the next write, which for an ASGI response is its body; ``close``, ``write_eof`` and
    ``abort`` flush or drop it. Everything else is the real transport's."""

    __slots__ = ("_head", "_transport", "expect_head")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head = b""
        #: The next write may be a response's head (set by the protocol between responses).
        self.expect_head = True

    def write(self, data: bytes) -> None:
        head = self._head
        if head:
            self._head = b""
            self._transport.write(head + data)
        elif self.expect_head and data[:9] == b"HTTP/1.1 " and data[9:12] != b"100":
            # A head (not an interim "100 Continue", which the client waits for).
            self.expect_head = False
            self._head = data
        else:
            self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        head, self._head = self._head, b""
        if head and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._head = b""
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Timeouts:
    """How long a client may take to send a request's headers and its body (gateway settings
    ``header_timeout`` / ``body_timeout``; set by ``server.create_app``)."""

    header = 10.0
    body = 60.0


TIMEOUTS = Timeouts()

_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through :class:`_Coalesced` (a WebSocket gets the
    real transport: each of its messages is one write already), with time limits on a client's
    request: its headers within ``TIMEOUTS.header`` seconds from its first byte (or from the
    connection), its body within ``TIMEOUTS.body`` seconds after them; else 408 and closed.
    uvicorn itself has none: a client sending half a request would hold a connection for ever."""

    _reading: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Coalesced(transport))  # type: ignore[arg-type]
        self._limit(TIMEOUTS.header, "headers")

    def _limit(self, seconds: float, what: str) -> None:
        self._unlimit()
        self._reading = self.loop.call_later(seconds, self._too_slow, what, seconds)

    def _unlimit(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None

    def _too_slow(self, what: str, seconds: float) -> None:
        self._reading = None
        if self.transport.is_closing():
            return
        # Headers late: the cycle is the previous request's, if any (answered, or still answering:
        # then no 408 in the middle of it). Body late: the cycle is this request's.
        cycle = self.cycle
        if cycle is None or (cycle.response_complete if what == "headers" else not cycle.response_started):
            message = f"the request's {what} did not arrive within {seconds:g} s; send them faster"
            _status, body, _headers = error_response(SlowClient(message))
            self.transport.write(_TIMED_OUT % (len(body), body))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._reading is None:  # a kept-alive connection's next request
            self._limit(TIMEOUTS.header, "headers")

    def on_headers_complete(self) -> None:
        self._limit(TIMEOUTS.body, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._unlimit()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._unlimit()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        if isinstance(self.transport, _Coalesced):
            self.transport.expect_head = True
        super().on_response_complete()

    def handle_websocket_upgrade(self) -> None:
        self._unlimit()
        coalesced = self.transport
        if isinstance(coalesced, _Coalesced):
            coalesced._flush()
            self.transport = coalesced._transport
        super().handle_websocket_upgrade()
