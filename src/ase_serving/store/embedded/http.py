"""The HTTP/1.1 client of the embedded config centre's JSON API, on asyncio streams.

Just what :class:`~.client.EmbeddedKV` needs: requests with an optional JSON body and query,
HTTP Basic credentials, a timeout per request, and kept-alive connections (one per concurrent
request: a watch's long poll holds one while heartbeats use another). Every long-running process
of a cluster talks to the config centre (gateway, LB service, loaders), and httpx, with httpcore,
anyio and (when installed) its command line's rich and click, cost each of them 6 to 11 MB.

Environment proxies are ignored, as the embedded centre is reached directly; ``https://`` uses the
system's certificate store.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any
from urllib.parse import urlencode, urlsplit

#: Longest status line + headers accepted.
_HEAD_LIMIT = 64 * 1024
#: Idle connections kept for later requests (the server closes them after 5 s idle).
_KEEP_IDLE = 8

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


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
        lines = [f"Host: {netloc}", "Accept: application/json"]
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            lines.append(f"Authorization: Basic {token}")
        self._head = "".join(f"{line}\r\n" for line in lines)
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
        head = f"{method} {target} HTTP/1.1\r\n{self._head}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        elif method in ("POST", "PUT", "PATCH"):
            head += "Content-Length: 0\r\n"
        data = (head + "\r\n").encode() + (body or b"")
        try:
            return await asyncio.wait_for(self._exchange(data), timeout)
        except asyncio.TimeoutError:
            raise HttpError("TimeoutError", f"no answer within {timeout:g} s") from None

    async def _exchange(self, data: bytes) -> tuple[int, bytes]:
        while True:
            conn, reused = await self._connection()
            try:
                return await self._send(conn, data, reused)
            except _Stale:
                continue

    async def _connection(self) -> tuple[Conn, bool]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections of another (ended) event loop are of no use here
            self._idle.clear()
            self._open.clear()
            self._loop = loop
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return (reader, writer), True
            self._drop(writer)
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
        return (reader, writer), False

    async def _send(self, conn: Conn, data: bytes, reused: bool) -> tuple[int, bytes]:
        reader, writer = conn
        answered = False
        try:
            writer.write(data)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            answered = True
            status, headers = _parse_head(head)
            body = await _read_body(reader, headers)
        except BaseException as exc:
            self._drop(writer)
            if isinstance(exc, (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)):
                if reused and not answered and not isinstance(exc, asyncio.LimitOverrunError):
                    raise _Stale from None
                raise HttpError(type(exc).__name__, str(exc) or "connection closed") from None
            raise
        if (
            len(self._idle) >= _KEEP_IDLE
            or headers.get("connection", "").lower() == "close"
            or (
                "content-length" not in headers
                and "chunked" not in headers.get("transfer-encoding", "").lower()
            )
        ):
            self._drop(writer)
        else:
            self._idle.append(conn)
        return status, body

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


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    status = int(rest.partition(" ")[0])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    return status, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()  # the server closes the connection to end the body
