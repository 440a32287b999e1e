"""The HTTP/1.1 client of the embedded config centre's JSON API, on asyncio streams and h11.

Just what :class:`~.client.EmbeddedKV` needs: requests with an optional JSON body and query,
HTTP Basic credentials, a timeout per request, and kept-alive connections (one per concurrent
request: a watch's long poll holds one while heartbeats use another). Every long-running process
of a cluster talks to the config centre (gateway, LB service, loaders), and httpx, with httpcore,
anyio and (when installed) its command line's rich and click, cost each of them 6 to 11 MB. The
protocol itself is h11's (uvicorn's dependency already; 0.4 MB).

Environment proxies are ignored, as the embedded centre is reached directly; ``https://`` uses the
system's certificate store.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import h11

#: Longest status line + headers accepted.
_HEAD_LIMIT = 64 * 1024
#: Idle connections kept for later requests (the server closes them after 5 s idle).
_KEEP_IDLE = 8
_READ = 64 * 1024


@dataclass
class Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    http: h11.Connection = field(
        default_factory=lambda: h11.Connection(h11.CLIENT, max_incomplete_event_size=_HEAD_LIMIT)
    )


class HttpError(Exception):
    """No answer: unreachable, connection lost, timed out, or not HTTP. ``kind`` names the cause."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Stale(Exception):
    """A kept-alive connection was closed by the server before it answered: send again."""


class HttpClient:
    """Requests to one server (``base_url``: ``http[s]://host:port[/prefix]``)."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        netloc = parts.netloc.rpartition("@")[2]
        headers = [("Host", netloc), ("Accept", "application/json")]
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers.append(("Authorization", f"Basic {token}"))
        self._headers = headers
        self._idle: list[Conn] = []
        self._open: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ssl: Any = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        params: dict[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, bytes]:
        """(status, body) of one request; :class:`HttpError` when no answer came."""
        target = self.prefix + path + (f"?{urlencode(params)}" if params else "")
        headers = list(self._headers)
        if body is not None:
            headers.append(("Content-Type", "application/json"))
        if body is not None or method in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", str(len(body or b""))))
        req = h11.Request(method=method, target=target, headers=headers)
        try:
            return await asyncio.wait_for(self._exchange(req, body or b""), timeout)
        except asyncio.TimeoutError:
            raise HttpError("TimeoutError", f"no answer within {timeout:g} s") from None

    async def _exchange(self, req: h11.Request, body: bytes) -> tuple[int, bytes]:
        while True:
            conn, reused = await self._connection()
            try:
                return await self._send(conn, req, body, reused)
            except _Stale:
                continue

    async def _connection(self) -> tuple[Conn, bool]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections of another (ended) event loop are of no use here
            self._idle.clear()
            self._open.clear()
            self._loop = loop
        while self._idle:
            conn = self._idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn, True
            self._drop(conn.writer)
        if self.tls and self._ssl is None:
            import ssl

            self._ssl = ssl.create_default_context()
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self._ssl if self.tls else None, limit=_HEAD_LIMIT
            )
        except OSError as exc:
            raise HttpError(type(exc).__name__, str(exc) or "cannot connect") from None
        self._open.add(writer)
        return Conn(reader, writer), False

    async def _send(self, conn: Conn, req: h11.Request, body: bytes, reused: bool) -> tuple[int, bytes]:
        http, writer = conn.http, conn.writer
        answered = False
        try:
            writer.write(http.send(req) + http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage()))
            await writer.drain()
            status, parts = 0, []
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    data = await conn.reader.read(_READ)
                    if not data and not answered:
                        raise ConnectionResetError("connection closed before an answer")
                    http.receive_data(data)
                elif isinstance(event, h11.Response):
                    answered = True
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    parts.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionResetError("connection closed during the answer")
        except BaseException as exc:
            self._drop(writer)
            if isinstance(exc, (OSError, h11.ProtocolError)):
                if reused and not answered and isinstance(exc, OSError):
                    raise _Stale from None
                raise HttpError(type(exc).__name__, str(exc) or "connection closed") from None
            raise
        if len(self._idle) < _KEEP_IDLE and http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()
            self._idle.append(conn)
        else:
            self._drop(writer)
        return status, b"".join(parts)

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self._open.discard(writer)
        with contextlib.suppress(Exception):
            writer.close()

    async def close(self) -> None:
        """Close every connection, idle or in use (a request in flight then fails)."""
        writers, self._open, self._idle = list(self._open), set(), []
        for writer in writers:
            with contextlib.suppress(Exception):
                writer.close()
        for writer in writers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
