"""The gateway's HTTP protocol: uvicorn's httptools protocol whose response head leaves with the
body in one ``send`` (see :class:`_Coalesced`). Named by import string in ``server.serve``."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through :class:`_Coalesced`; a WebSocket gets the
    real transport (each of its messages is one write already)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Coalesced(transport))  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        if isinstance(self.transport, _Coalesced):
            self.transport.expect_head = True
        super().on_response_complete()

    def handle_websocket_upgrade(self) -> None:
        coalesced = self.transport
        if isinstance(coalesced, _Coalesced):
            coalesced._flush()
            self.transport = coalesced._transport
        super().handle_websocket_upgrade()
